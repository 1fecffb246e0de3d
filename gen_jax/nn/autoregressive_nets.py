"""Networks of the neural autoregressive family: NADE, MADE, PixelCNN, Gated PixelCNN.

Each network maps data to `P` head outputs per dimension (the parameters of
that dimension's conditional); output d may depend only on inputs earlier in
the network's ordering. Every network also has an incremental form used by
the cached samplers (`gen_jax.inference.ar_sampling`): a cache, a method that
computes the head outputs of one position from it, and a method that writes
the sampled value back. Its arithmetic is that of the full forward pass
restricted to one position, so cached and re-forward sampling draw the same
values from the same key.

Heads (`head_size`, `head_log_prob`, `head_sample`), per dimension:
  bernoulli         P = 1 logit; x in {0, 1}
  categorical256    P = 256 logits over the levels k of x = k / 255
  logistic_mixture  P = 3M: mixture logits, means and log-scales of M logistics
                    discretized to the 256 bins of width 1/255, the edge bins
                    taking the tails (PixelCNN++, Salimans et al. 2017). Colour
                    channels are coupled through the R->G->B masks rather than
                    PixelCNN++'s linear mean coefficients.

Networks:
  NADE          Larochelle & Murray 2011: h_d = sigmoid(c + W_<d^T x_<d), weights
                shared across conditionals; O(DH) per example by a scan along the
                ordering that carries the hidden pre-activation (also the
                sampling cache), with the paper's O(DH) backward pass.
  MADE          Germain et al. 2015: an MLP whose weights are masked by unit
                degrees; connectivity-agnostic training draws one of N masks.
  PixelCNN      van den Oord et al. 2016a: a 7x7 mask-A conv, residual blocks
                (1x1, kxk mask B, 1x1), two 1x1 output convs. Stacked causal
                kernels leave a blind spot above-right of each pixel.
  GatedPixelCNN van den Oord et al. 2016b: a vertical stack (rows above, full
                width) and a horizontal stack (the row to the left), tanh-sigmoid
                gates, the vertical stack fed down-shifted into the horizontal
                one: no blind spot.
Channels of colour images are ordered R -> G -> B: hidden features are split
into C groups, and at the kernel centre group g sees input groups < g (mask A,
the first layer) or <= g (mask B).
"""
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.nn import dists

LIKELIHOODS = ("bernoulli", "categorical256", "logistic_mixture")
LEVELS = 256
MIN_LOG_SCALE = -7.0


# ---------------------------------------------------------------------------------------------
# Heads: per-dimension conditionals

def head_size(likelihood: str, mixtures: int = 1) -> int:
  """Number of head outputs P per dimension."""
  return {"bernoulli": 1, "categorical256": LEVELS, "logistic_mixture": 3 * mixtures}[likelihood]


def head_log_prob(likelihood: str, out: jax.Array, x: jax.Array) -> jax.Array:
  """log p(x_d | x_<d) per dimension, nats: out f32[..., P], x f32[...] -> f32[...].

  x is the data-variant value: {0, 1} (bernoulli) or k / 255 (8-bit heads).
  """
  if likelihood == "bernoulli":
    logit = out[..., 0]
    return x * logit - jax.nn.softplus(logit)   # log sigmoid(l)^x (1 - sigmoid(l))^(1-x)
  if likelihood == "categorical256":
    k = jnp.round(x * (LEVELS - 1)).astype(jnp.int32)
    return jnp.take_along_axis(jax.nn.log_softmax(out, -1), k[..., None], -1)[..., 0]
  logit_pi, mean, log_scale = jnp.split(out, 3, axis=-1)
  log_scale = jnp.maximum(log_scale, MIN_LOG_SCALE)
  xb = jnp.broadcast_to(x[..., None], mean.shape)
  # Flattened to 1-D, dists' discretized logistic returns one log-mass per element.
  lp = dists.discretized_logistic_log_prob(xb.reshape(-1), mean.reshape(-1),
                                           log_scale.reshape(-1), LEVELS).reshape(mean.shape)
  return jax.nn.logsumexp(jax.nn.log_softmax(logit_pi, -1) + lp, axis=-1)


def head_sample(likelihood: str, out: jax.Array, rng: jax.Array) -> jax.Array:
  """One exact draw per dimension: out f32[..., P] -> f32[...] in data-variant values."""
  if likelihood == "bernoulli":
    u = jax.random.uniform(rng, out.shape[:-1], out.dtype)
    return (u < jax.nn.sigmoid(out[..., 0])).astype(out.dtype)
  if likelihood == "categorical256":
    return jax.random.categorical(rng, out, -1).astype(out.dtype) / (LEVELS - 1)
  r_comp, r_u = jax.random.split(rng)
  logit_pi, mean, log_scale = jnp.split(out, 3, axis=-1)
  comp = jax.random.categorical(r_comp, logit_pi, -1)[..., None]
  mu = jnp.take_along_axis(mean, comp, -1)[..., 0]
  s = jnp.exp(jnp.maximum(jnp.take_along_axis(log_scale, comp, -1)[..., 0], MIN_LOG_SCALE))
  u = jax.random.uniform(r_u, mu.shape, out.dtype, 1e-6, 1.0 - 1e-6)
  v = mu + s * (jnp.log(u) - jnp.log1p(-u))        # a continuous logistic draw
  # Rounding to the nearest level and clipping is exactly the discretized law:
  # bin k holds [k - 1/2, k + 1/2] / 255, the edge bins the tails.
  return jnp.clip(jnp.round(v * (LEVELS - 1)), 0, LEVELS - 1) / (LEVELS - 1)


# ---------------------------------------------------------------------------------------------
# NADE

def _nade_scan(w, v, c, xo):
  """(a after the last position, logits f32[B, D]) by one scan step per position."""
  def body(a, inp):
    x_d, w_d, v_d = inp
    return a + x_d[:, None] * w_d, (jax.nn.sigmoid(a) * v_d).sum(-1)
  a_end, logit = jax.lax.scan(body, c, (xo.T, w, v))
  return a_end, logit.T


@jax.custom_vjp
def nade_logits(w, v, c, xo):
  """NADE logits along an ordering, without output biases: f32[B, D].

  logit_d = V_d . sigmoid(a_d), a_d = c + sum_{e<d} x_e W_e: O(DH) per example,
  one scan step per position carrying a. Args: w, v f32[D, H] (the rows of W, V
  in the ordering) or f32[D, B, H] (one ordering per example); c f32[B, H];
  xo f32[B, D] (the inputs in the ordering).

  The backward pass is Larochelle & Murray's O(DH) recursion, written by hand: a
  reverse scan that carries g = sum_{e>d} dL/da_e and recovers a_d = a_{d+1} -
  x_d W_d, so nothing of size [D, B, H] is stored; on CPU it is ~2.5x faster
  than differentiating the scan (the test checks it against autodiff).
  """
  return _nade_scan(w, v, c, xo)[1]


def _nade_fwd(w, v, c, xo):
  a_end, logit = _nade_scan(w, v, c, xo)
  return logit, (w, v, xo, a_end)


def _nade_bwd(res, g_logit):
  w, v, xo, a_end = res

  def body(carry, inp):
    a_next, g = carry                 # a_{d+1}; g = sum_{e>d} dL/da_e
    x_d, w_d, v_d, gl = inp           # gl = dL/dlogit_d: [B]
    a = a_next - x_d[:, None] * w_d
    h = jax.nn.sigmoid(a)
    if w_d.ndim == 1:                 # one ordering: reduce over the batch
      dw, dv = x_d @ g, gl @ h
    else:
      dw, dv = x_d[:, None] * g, gl[:, None] * h
    dx = (g * w_d).sum(-1)
    da = gl[:, None] * v_d * h * (1.0 - h)
    return (a, g + da), (dw, dv, dx)

  (_, g), (dw, dv, dx) = jax.lax.scan(body, (a_end, jnp.zeros_like(a_end)),
                                      (xo.T, w, v, g_logit.T), reverse=True)
  return dw, dv, g, dx.T


nade_logits.defvjp(_nade_fwd, _nade_bwd)


class NADE(nn.Module):
  """NADE: x f32[B, D] -> Bernoulli logits f32[B, D] (natural indexing).

  For ordering o, logit of x_{o_d} = b_{o_d} + V_{o_d} . sigmoid(c + sum_{e<d} W_{o_e} x_{o_e}).
  `order` is i32[D] (one ordering) or i32[B, D] (one per example, for
  order-agnostic training). With `num_classes`, a class adds its embedding
  to c and to b.
  """
  dims: int
  hidden: int
  num_classes: int = 0

  def setup(self):
    d, h = self.dims, self.hidden
    self.w = self.param("w", nn.initializers.normal(d ** -0.5), (d, h))
    self.c = self.param("c", nn.initializers.zeros, (h,))
    self.v = self.param("v", nn.initializers.normal(h ** -0.5), (d, h))
    self.b = self.param("b", nn.initializers.zeros, (d,))
    if self.num_classes:
      self.cond_c = self.param("cond_c", nn.initializers.zeros, (self.num_classes, h))
      self.cond_b = self.param("cond_b", nn.initializers.zeros, (self.num_classes, d))

  def _biases(self, y, n):
    """(c f32[n, H], b f32[n, D]) with the class embeddings added."""
    c, b = jnp.broadcast_to(self.c, (n, self.hidden)), jnp.broadcast_to(self.b, (n, self.dims))
    if self.num_classes:
      c, b = c + self.cond_c[y], b + self.cond_b[y]
    return c, b

  def __call__(self, x, order, y=None):
    c, b = self._biases(y, x.shape[0])
    if order.ndim == 1:                   # one ordering
      xo, bo = x[:, order], b[:, order]
      w, v = self.w[order], self.v[order]                        # [D, H]
    else:                                 # one per example: [D, B, H] slices
      xo, bo = jnp.take_along_axis(x, order, 1), jnp.take_along_axis(b, order, 1)
      w, v = self.w[order.T], self.v[order.T]

    logit_o = nade_logits(w, v, c, xo) + bo
    inv = jnp.argsort(order, axis=-1)
    return logit_o[:, inv] if order.ndim == 1 else jnp.take_along_axis(logit_o, inv, 1)

  # Incremental form: the cache is the running hidden pre-activation.
  def init_cache(self, n, y=None):
    c, b = self._biases(y, n)
    return {"a": c, "b": b}

  def step(self, cache, d):
    """Head outputs f32[n, 1] of dimension d (a traced i32[]) from the cache."""
    logit = jax.nn.sigmoid(cache["a"]) @ self.v[d] + cache["b"][:, d]
    return logit[:, None], cache

  def write(self, cache, d, value):
    return {**cache, "a": cache["a"] + value[:, None] * self.w[d]}


# ---------------------------------------------------------------------------------------------
# MADE

def made_degrees(dims: int, hidden: tuple, num_masks: int, order: str = "natural",
                 seed: int = 0) -> list[np.ndarray]:
  """Unit degrees of `num_masks` MADE masks: [in i32[N, D], hidden_1 i32[N, H1], ...].

  Input i has degree = its position in mask k's ordering + 1: the natural
  order, or with order == "random" a random permutation per mask. Hidden
  degrees follow Germain et al. 2015: layer l draws uniformly from {min degree
  of layer l-1, ..., D-1}, so no unit is dead. (On MNIST a random order trains
  much faster than the raster order: raster-ordered low-degree units see only
  the always-blank top rows.)
  """
  rng = np.random.default_rng(seed)
  out = [np.zeros((num_masks, dims), np.int32)] + [np.zeros((num_masks, h), np.int32)
                                                   for h in hidden]
  for k in range(num_masks):
    perm = rng.permutation(dims) if order == "random" else np.arange(dims)
    out[0][k, perm] = np.arange(1, dims + 1)
    low = 1
    for layer, width in enumerate(hidden, start=1):
      out[layer][k] = rng.integers(low, max(dims, low + 1), size=width)
      low = int(out[layer][k].min())
  return out


def _fan_in_normal(in_axis=0, out_axis=(1, 2)):
  return nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=in_axis,
                                          out_axis=out_axis)


class MADE(nn.Module):
  """MADE: x f32[B, D], degrees -> head outputs f32[B, D, P].

  `degrees` = (in i32[D], hidden_1 i32[H1], ...) of one mask (`made_degrees`);
  a hidden unit of degree m sees inputs of degree <= m and output d sees
  hidden units of degree < degree(d), so out[:, d] depends only on inputs of
  lower degree. `direct` adds masked input -> output weights (Germain's
  direct connections); a class adds its embedding to every hidden layer.
  """
  dims: int
  hidden: tuple
  head: int
  direct: bool = False
  num_classes: int = 0
  activation: Callable = jax.nn.relu

  def setup(self):
    sizes = (self.dims,) + tuple(self.hidden)
    self.kernels = [self.param(f"kernel_{i}", nn.initializers.lecun_normal(),
                               (sizes[i], sizes[i + 1])) for i in range(len(self.hidden))]
    self.biases = [self.param(f"bias_{i}", nn.initializers.zeros, (sizes[i + 1],))
                   for i in range(len(self.hidden))]
    self.out_kernel = self.param("out_kernel", _fan_in_normal(),
                                 (sizes[-1], self.dims, self.head))
    self.out_bias = self.param("out_bias", nn.initializers.zeros, (self.dims, self.head))
    if self.direct:
      self.direct_kernel = self.param("direct_kernel", _fan_in_normal(),
                                      (self.dims, self.dims, self.head))
    if self.num_classes:
      self.cond = [self.param(f"cond_{i}", nn.initializers.zeros, (self.num_classes, h))
                   for i, h in enumerate(self.hidden)]

  def _pre(self, i, h, mask, y):
    a = h @ (self.kernels[i] * mask) + self.biases[i]
    return a + self.cond[i][y] if self.num_classes else a

  def __call__(self, x, degrees, y=None):
    deg_in, h = degrees[0], x
    for i, deg in enumerate(degrees[1:]):
      h = self.activation(self._pre(i, h, deg[None, :] >= degrees[i][:, None], y))
    mask_out = (deg_in[None, :] > degrees[-1][:, None])[..., None]        # [H, D, 1]
    out = jnp.einsum("bh,hdp->bdp", h, self.out_kernel * mask_out) + self.out_bias
    if self.direct:
      mask_dir = (deg_in[None, :] > deg_in[:, None])[..., None]
      out = out + jnp.einsum("be,edp->bdp", x, self.direct_kernel * mask_dir)
    return out

  # Incremental form: the first layer's pre-activation accumulates x_d W_d as
  # each x_d is drawn; deeper layers are recomputed, the output only for d.
  def init_cache(self, n, degrees, y=None):
    a = jnp.broadcast_to(self.biases[0], (n, self.hidden[0]))
    if self.num_classes:
      a = a + self.cond[0][y]
    return {"a": a, "x": jnp.zeros((n, self.dims), a.dtype), "y": y}

  def step(self, cache, d, degrees):
    deg_in, y = degrees[0], cache["y"]
    h = self.activation(cache["a"])
    for i, deg in enumerate(degrees[2:], start=1):
      h = self.activation(self._pre(i, h, deg[None, :] >= degrees[i][:, None], y))
    mask = (deg_in[d] > degrees[-1])[:, None]                              # [H, 1]
    out = h @ (self.out_kernel[:, d] * mask) + self.out_bias[d]
    if self.direct:
      out = out + cache["x"] @ (self.direct_kernel[:, d] * (deg_in[d] > deg_in)[:, None])
    return out, cache

  def write(self, cache, d, value, degrees):
    row = self.kernels[0][d] * (degrees[1] >= degrees[0][d])
    return {**cache, "a": cache["a"] + value[:, None] * row, "x": cache["x"].at[:, d].set(value)}


# ---------------------------------------------------------------------------------------------
# Masked convolutions

def channel_groups(n: int, groups: int, repeats: int = 1) -> np.ndarray:
  """Colour group of each of n features: `repeats` contiguous blocks, each split into
  `groups` runs (so features f and f + n/repeats, e.g. a gate's two halves, share a group)."""
  block = n // repeats
  return (np.arange(n) % block) * groups // block


def conv_mask(up: int, left: int, right: int, c_in: int, c_out: int, kind: str,
              groups: int, in_repeats: int = 1, out_repeats: int = 1) -> np.ndarray:
  """f32[up + 1, left + 1 + right, c_in, c_out]: which taps a masked conv keeps.

  The kernel covers `up` rows above the output pixel and its own row (the
  last), `left` columns before it and `right` after. kind "A" / "B": rows
  above are kept, taps right of the centre in its own row are cut, and the
  centre connects input group gi to output group go iff go > gi (A) or
  go >= gi (B). kind "none" keeps every tap (the vertical stack, whose
  features are used only after a down-shift).
  """
  m = np.ones((up + 1, left + 1 + right, c_in, c_out), np.float32)
  if kind == "none":
    return m
  m[up, left + 1:] = 0.0
  gi = channel_groups(c_in, groups, in_repeats)[:, None]
  go = channel_groups(c_out, groups, out_repeats)[None, :]
  m[up, left] = (go > gi) if kind == "A" else (go >= gi)
  return m


class MaskedConv(nn.Module):
  """A masked conv (see `conv_mask`): f32[B, H, W, in_features] -> f32[B, H, W, features].

  `__call__` zero-pads (up rows on top, left/right columns) and calls
  `valid`, which the cached samplers also apply to a window or a band of
  rows of a padded buffer. The mask multiplies the kernel inside the forward
  pass, so masked weights get no gradient either.
  """
  features: int
  in_features: int
  up: int = 0
  left: int = 0
  right: int = 0
  kind: str = "B"
  groups: int = 1
  in_repeats: int = 1
  out_repeats: int = 1

  def setup(self):
    shape = (self.up + 1, self.left + 1 + self.right, self.in_features, self.features)
    self.kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
    self.bias = self.param("bias", nn.initializers.zeros, (self.features,))

  def mask(self) -> np.ndarray:
    return conv_mask(self.up, self.left, self.right, self.in_features, self.features, self.kind,
                     self.groups, self.in_repeats, self.out_repeats)

  def valid(self, xpad):
    y = jax.lax.conv_general_dilated(xpad, self.kernel * self.mask(), (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + self.bias

  def __call__(self, x):
    return self.valid(jnp.pad(x, ((0, 0), (self.up, 0), (self.left, self.right), (0, 0))))


def _embed(module, name, num_classes, features):
  return module.param(name, nn.initializers.zeros, (num_classes, features)) if num_classes else None


def _cond(table, y):
  """Class embedding as a per-image bias f32[B, 1, 1, F] (0 when unconditional)."""
  return 0.0 if table is None else table[y][:, None, None, :]


def _window(buf, i, j, rows, cols):
  """buf[:, i:i+rows, j:j+cols] for traced i, j."""
  n, _, _, c = buf.shape
  return jax.lax.dynamic_slice(buf, (0, i, j, 0), (n, rows, cols, c))


def _put(buf, value, i, j):
  return jax.lax.dynamic_update_slice(buf, value.astype(buf.dtype), (0, i, j, 0))


# ---------------------------------------------------------------------------------------------
# PixelCNN

class PixelCNN(nn.Module):
  """PixelCNN: x f32[B, H, W, C] in [0, 1] -> head outputs f32[B, H, W, C, P].

  `features` is the residual stream width (2h in the paper's Figure 5; the
  blocks' inner convs have features / 2); `blocks` residual blocks of
  ReLU-1x1-ReLU-kxk-ReLU-1x1; the head is ReLU-1x1(out_hidden)-ReLU-1x1.
  """
  image_shape: tuple
  features: int
  blocks: int
  head: int
  first_kernel: int = 7
  kernel: int = 3
  out_hidden: int = 32
  num_classes: int = 0

  def setup(self):
    c, f, g = self.image_shape[-1], self.features, self.image_shape[-1]
    k0, k = self.first_kernel // 2, self.kernel // 2
    self.first = MaskedConv(f, c, k0, k0, k0, "A", g)
    self.reduce = [MaskedConv(f // 2, f, kind="B", groups=g) for _ in range(self.blocks)]
    self.mid = [MaskedConv(f // 2, f // 2, k, k, k, "B", g) for _ in range(self.blocks)]
    self.expand = [MaskedConv(f, f // 2, kind="B", groups=g) for _ in range(self.blocks)]
    self.head1 = MaskedConv(self.out_hidden, f, kind="B", groups=g)
    self.head2 = MaskedConv(c * self.head, self.out_hidden, kind="B", groups=g)
    self.cond0 = _embed(self, "cond_0", self.num_classes, f)
    self.conds = [_embed(self, f"cond_block_{b}", self.num_classes, f // 2)
                  for b in range(self.blocks)]

  def _out(self, a):
    out = self.head2(jax.nn.relu(self.head1(jax.nn.relu(a))))
    return out.reshape(out.shape[:3] + (self.image_shape[-1], self.head))

  def __call__(self, x, y=None):
    a = self.first(2.0 * x - 1.0) + _cond(self.cond0, y)
    for b in range(self.blocks):
      t = jax.nn.relu(self.reduce[b](jax.nn.relu(a)))
      t = jax.nn.relu(self.mid[b](t) + _cond(self.conds[b], y))
      a = a + self.expand[b](t)
    return self._out(a)

  # Incremental form: padded buffers of the network input and of every kxk
  # conv's input; one pixel's column of the network per call.
  def init_cache(self, n, y=None):
    h, w, c = self.image_shape
    k0, k = self.first_kernel // 2, self.kernel // 2
    dt = jnp.result_type(float)
    return {"x": jnp.zeros((n, h + k0, w + 2 * k0, c), dt), "y": y,
            "t": [jnp.zeros((n, h + k, w + 2 * k, self.features // 2), dt)
                  for _ in range(self.blocks)]}

  def pixel(self, cache, i, j):
    """Head outputs f32[n, C, P] at pixel (i, j) (traced) from the buffers."""
    k0, k = self.first_kernel // 2, self.kernel // 2
    y, bufs = cache["y"], list(cache["t"])
    a = self.first.valid(_window(cache["x"], i, j, k0 + 1, 2 * k0 + 1)) + _cond(self.cond0, y)
    for b in range(self.blocks):
      t = jax.nn.relu(self.reduce[b].valid(jax.nn.relu(a)))
      bufs[b] = _put(bufs[b], t, i + k, j + k)
      t = self.mid[b].valid(_window(bufs[b], i, j, k + 1, 2 * k + 1))
      a = a + self.expand[b].valid(jax.nn.relu(t + _cond(self.conds[b], y)))
    return self._out(a)[:, 0, 0], {**cache, "t": bufs}

  def row(self, cache, i):
    del i
    return cache

  def write(self, cache, i, j, ch, value):
    k0 = self.first_kernel // 2
    return {**cache, "x": cache["x"].at[:, i + k0, j + k0, ch].set(2.0 * value - 1.0)}


# ---------------------------------------------------------------------------------------------
# Gated PixelCNN

def _gate(a):
  f = a.shape[-1] // 2
  return jnp.tanh(a[..., :f]) * jax.nn.sigmoid(a[..., f:])


def down_shift(v):
  """Row i <- row i - 1 (zeros in row 0): f32[B, H, W, F]."""
  return jnp.pad(v, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


class GatedPixelCNN(nn.Module):
  """Gated PixelCNN: x f32[B, H, W, C] in [0, 1] -> head outputs f32[B, H, W, C, P].

  Layer l: v_pre = V_l(v) over rows <= i (kernel (k/2 + 1) x k, unmasked);
  h_pre = H_l(h) over the row up to the pixel (1 x (k/2 + 1), mask A at l = 0,
  else B) + 1x1(down_shift(v_pre)); v <- gate(v_pre); h <- h + 1x1(gate(h_pre))
  (no residual at l = 0). gate(a) = tanh(a_1) * sigmoid(a_2). A class adds
  its embeddings to v_pre and h_pre. The head reads the horizontal stack.
  """
  image_shape: tuple
  features: int
  layers: int
  head: int
  first_kernel: int = 7
  kernel: int = 3
  out_hidden: int = 32
  num_classes: int = 0

  def setup(self):
    c, f = self.image_shape[-1], self.features
    v, h, v2h, hout = [], [], [], []
    for li in range(self.layers):
      kk = (self.first_kernel if li == 0 else self.kernel) // 2
      cin = c if li == 0 else f
      v.append(MaskedConv(2 * f, cin, kk, kk, kk, "none", c, out_repeats=2))
      h.append(MaskedConv(2 * f, cin, 0, kk, 0, "A" if li == 0 else "B", c, out_repeats=2))
      v2h.append(MaskedConv(2 * f, 2 * f, kind="none", groups=c))
      hout.append(MaskedConv(f, f, kind="B", groups=c))
    self.v, self.h, self.v2h, self.hout = v, h, v2h, hout
    self.head1 = MaskedConv(self.out_hidden, f, kind="B", groups=c)
    self.head2 = MaskedConv(c * self.head, self.out_hidden, kind="B", groups=c)
    n = self.num_classes
    self.cond_v = [_embed(self, f"cond_v_{li}", n, 2 * f) for li in range(self.layers)]
    self.cond_h = [_embed(self, f"cond_h_{li}", n, 2 * f) for li in range(self.layers)]

  def _out(self, h):
    out = self.head2(jax.nn.relu(self.head1(jax.nn.relu(h))))
    return out.reshape(out.shape[:3] + (self.image_shape[-1], self.head))

  def __call__(self, x, y=None, stacks: bool = False):
    """With `stacks`, also returns the last layer's down-shifted vertical input to the
    horizontal stack f32[B, H, W, 2F] and the horizontal stream before the head."""
    v = h = 2.0 * x - 1.0
    for li in range(self.layers):
      v_pre = self.v[li](v) + _cond(self.cond_v[li], y)
      v_down = down_shift(v_pre)
      h_pre = self.h[li](h) + self.v2h[li](v_down) + _cond(self.cond_h[li], y)
      v = _gate(v_pre)
      h_new = self.hout[li](_gate(h_pre))
      h = h_new if li == 0 else h + h_new
    out = self._out(h)
    return (out, v_down, h) if stacks else out

  # Incremental form: the vertical stack is computed one row at a time once
  # the row above is complete (`row`), the horizontal stack one pixel at a time.
  def init_cache(self, n, y=None):
    hh, w, c = self.image_shape
    k0, k, f = self.first_kernel // 2, self.kernel // 2, self.features
    dt = jnp.result_type(float)
    return {"x": jnp.zeros((n, hh + k0, w + 2 * k0, c), dt), "y": y,
            "v": [jnp.zeros((n, hh + k, w + 2 * k, f), dt) for _ in range(self.layers - 1)],
            "h": [jnp.zeros((n, hh, w + k, f), dt) for _ in range(self.layers - 1)],
            "vh": [jnp.zeros((n, w, 2 * f), dt) for _ in range(self.layers)]}

  def row(self, cache, i):
    """Vertical stack at row i - 1 -> each layer's 1x1(down_shift(v_pre)) at row i."""
    k0, k, w = self.first_kernel // 2, self.kernel // 2, self.image_shape[1]
    r, y = jnp.maximum(i - 1, 0), cache["y"]
    vbufs, vh = list(cache["v"]), []
    band = _window(cache["x"], r, 0, k0 + 1, w + 2 * k0)
    for li in range(self.layers):
      v_pre = self.v[li].valid(band) + _cond(self.cond_v[li], y)            # [n, 1, W, 2F]
      v_pre = jnp.where(i > 0, v_pre, 0.0)       # row 0 sees only the zero padding
      vh.append(self.v2h[li].valid(v_pre)[:, 0])
      if li < self.layers - 1:
        old = _window(vbufs[li], r + k, k, 1, w)
        vbufs[li] = _put(vbufs[li], jnp.where(i > 0, _gate(v_pre), old), r + k, k)
        band = _window(vbufs[li], r, 0, k + 1, w + 2 * k)
    return {**cache, "v": vbufs, "vh": vh}

  def pixel(self, cache, i, j):
    """Head outputs f32[n, C, P] at pixel (i, j) (traced) from the buffers."""
    k0, k, y = self.first_kernel // 2, self.kernel // 2, cache["y"]
    hbufs = list(cache["h"])
    h = None
    for li in range(self.layers):
      if li == 0:
        win = _window(cache["x"], i + k0, j, 1, k0 + 1)
      else:
        hbufs[li - 1] = _put(hbufs[li - 1], h, i, j + k)
        win = _window(hbufs[li - 1], i, j, 1, k + 1)
      vh = jax.lax.dynamic_index_in_dim(cache["vh"][li], j, 1, keepdims=False)[:, None, None]
      h_pre = self.h[li].valid(win) + vh + _cond(self.cond_h[li], y)
      h_new = self.hout[li].valid(_gate(h_pre))
      h = h_new if li == 0 else h + h_new
    return self._out(h)[:, 0, 0], {**cache, "h": hbufs}

  def write(self, cache, i, j, ch, value):
    k0 = self.first_kernel // 2
    return {**cache, "x": cache["x"].at[:, i + k0, j + k0, ch].set(2.0 * value - 1.0)}
