"""Invertible layers for normalizing flows, with exact inverses and log-determinants.

Every bijector is a Flax module called as `y, log_det = layer(x, reverse=False)`:
  forward (reverse=False): y = f(x),      log_det = log|det df/dx| at x
  reverse (reverse=True):  y = f^-1(x),   log_det = log|det df^-1/dx| at x
                                                  = -(forward log_det at f^-1(x))
`log_det: f32[B]` is in nats, summed over every non-batch axis. For a density
model x -> z, log p(x) = log p(z) + forward log_det.

Images are NHWC (`x: f32[B, H, W, C]`), flat data `x: f32[B, D]`.

Variables: trainable ones live in "params". Random but fixed choices (the
rotation P and sign(s) of `Invertible1x1Conv`, the order of `Permute`) live in
the non-trainable "constants" collection: `Module.init` returns it beside
"params" and `apply` needs both, so an optimizer never sees them. They are
drawn from the "params" RNG at init.

Data-dependent initialization (`ActNorm`) happens in `Module.init`: initialize
with a real batch in the forward direction.
"""
import functools
import math
from typing import Callable, Sequence

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nn import dists, layers, masked

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3


def bounded_log_scale(raw: jax.Array, bound: float) -> jax.Array:
  """bound * tanh(raw / bound): about `raw` near 0, never beyond +-bound.

  An unbounded exp(raw) lets one large conditioner output overflow the
  affine scale (inf, then NaN) in a single step; the soft bound keeps the
  gradient nonzero, unlike clipping.
  """
  return bound * jnp.tanh(raw / bound)


SCALES = ("tanh", "sigmoid")


def coupling_log_scale(raw: jax.Array, scale: str, bound: float) -> jax.Array:
  """An affine coupling's log-scale from its conditioner's raw output.

  "tanh": `bounded_log_scale(raw, bound)`, a factor in [e^-bound, e^bound],
    1 at raw = 0 (RealNVP's soft bound).
  "sigmoid": log sigmoid(raw + 2), a factor in (0, 1), 0.88 at raw = 0 (the
    Glow code's choice): every coupling contracts, so no coupling can blow an
    unusual input up; ActNorm and the 1x1 convolutions still rescale freely.
  """
  if scale == "tanh":
    return bounded_log_scale(raw, bound)
  if scale == "sigmoid":
    return jax.nn.log_sigmoid(raw + 2.0)
  raise ValueError(f"coupling scale must be one of {SCALES} (got {scale!r})")


def _sum_event(v: jax.Array) -> jax.Array:
  return v.reshape(v.shape[0], -1).sum(-1)


def _split_half(x: jax.Array, parity: bool) -> tuple[jax.Array, jax.Array]:
  """Last axis into (conditioning: first n//2, transformed: the rest); parity flips first."""
  if parity:
    x = jnp.flip(x, -1)
  n = x.shape[-1] // 2
  return x[..., :n], x[..., n:]


def _join_half(a: jax.Array, b: jax.Array, parity: bool) -> jax.Array:
  x = jnp.concatenate([a, b], axis=-1)
  return jnp.flip(x, -1) if parity else x


def _affine(x: jax.Array, raw: jax.Array, bound: float, reverse: bool, scale: str = "tanh"):
  """Elementwise y = x * exp(log_s) + t (or its inverse); raw = [raw_log_s, t] on the last axis.

  log_s = `coupling_log_scale(raw_log_s, scale, bound)`. Returns (y,
  elementwise log|dy/dx|), both shaped like x.
  """
  raw_s, t = jnp.split(raw, 2, axis=-1)
  log_s = coupling_log_scale(raw_s, scale, bound)
  if reverse:
    return (x - t) * jnp.exp(-log_s), -log_s
  return x * jnp.exp(log_s) + t, log_s


class _ConvNet(nn.Module):
  """RealNVP/Glow conditioner: conv3x3 -> relu -> conv1x1 -> relu -> conv3x3 (zero init).

  `layers.Conv`: on the CPU the 1x1 layer runs as a matrix product.
  """
  hidden: int
  out: int

  @nn.compact
  def __call__(self, x):
    h = jax.nn.relu(layers.Conv(self.hidden, (3, 3), name="conv_in")(x))
    h = jax.nn.relu(layers.Conv(self.hidden, (1, 1), name="conv_mid")(h))
    return layers.Conv(self.out, (3, 3), kernel_init=nn.initializers.zeros, name="conv_out")(h)


class _ZeroMLP(nn.Module):
  """MLP whose last layer starts at zero, so the bijector using it starts at the identity."""
  hidden: Sequence[int]
  out: int
  activation: Callable = jax.nn.relu

  @nn.compact
  def __call__(self, x):
    if self.hidden:
      x = self.activation(layers.MLP(tuple(self.hidden), self.activation, name="body")(x))
    return nn.Dense(self.out, kernel_init=nn.initializers.zeros, name="out")(x)


class AffineCoupling(nn.Module):
  """RealNVP affine coupling for images (Dinh et al. 2017): f32[B, H, W, C] -> same.

  mask="checkerboard": pixels with (h + w) % 2 == parity condition the others
  (all channels); mask="channel": half the channels (the first C//2, or the
  last C//2 with `parity`) condition the rest. The transformed part becomes
  x * exp(log_s) + t with (log_s, t) from a small conv net on the conditioning
  part, whose last layer is zero-initialized so the layer starts at the
  identity. With scale="tanh", log_s = scale_bound * tanh(raw / scale_bound),
  so each coupling scales by at most exp(+-scale_bound) (default 2: a factor
  in [0.14, 7.4]); scale="sigmoid" is Glow's contracting sigmoid(raw + 2)
  (see `coupling_log_scale`).
  """
  mask: str = "checkerboard"
  parity: bool = False
  hidden: int = 64
  scale_bound: float = 2.0
  scale: str = "tanh"

  @nn.compact
  def __call__(self, x, reverse: bool = False, cond: jax.Array | None = None):
    """`cond` (checkerboard only): f32[B, H, W, F] features the conditioner also sees
    (a conditional flow: the map is invertible in x for every cond)."""
    c = x.shape[-1]
    if self.mask == "checkerboard":
      hh, ww = jnp.meshgrid(jnp.arange(x.shape[1]), jnp.arange(x.shape[2]), indexing="ij")
      m = ((hh + ww) % 2 == int(self.parity)).astype(x.dtype)[:, :, None]
      inp = x * m if cond is None else jnp.concatenate([x * m, cond], axis=-1)
      raw = _ConvNet(self.hidden, 2 * c, name="net")(inp)
      y, ld = _affine(x, raw, self.scale_bound, reverse, self.scale)
      # Conditioning pixels pass through; their log-det entries are dropped.
      return m * x + (1 - m) * y, _sum_event((1 - m) * ld)
    if cond is not None:
      raise ValueError("a conditioning input needs mask 'checkerboard'")
    if self.mask == "channel":
      if c < 2:
        raise ValueError(f"mask 'channel' needs at least 2 channels (got {c})")
      a, b = _split_half(x, self.parity)
      raw = _ConvNet(self.hidden, 2 * b.shape[-1], name="net")(a)
      y_b, ld = _affine(b, raw, self.scale_bound, reverse, self.scale)
      return _join_half(a, y_b, self.parity), _sum_event(ld)
    raise ValueError(f"mask must be 'checkerboard' or 'channel' (got {self.mask!r})")


class AffineCouplingFlat(nn.Module):
  """Affine coupling on vectors: f32[B, D] -> f32[B, D], D >= 2.

  The first D//2 entries (the last D//2 with `parity`; alternate parity
  between layers) condition the rest through an MLP with zero-initialized
  output layer. Scale bound as in `AffineCoupling`.
  """
  hidden: Sequence[int] = (64, 64)
  parity: bool = False
  scale_bound: float = 2.0

  @nn.compact
  def __call__(self, x, reverse: bool = False):
    if x.shape[-1] < 2:
      raise ValueError(f"a coupling needs D >= 2 (got {x.shape[-1]})")
    a, b = _split_half(x, self.parity)
    raw = _ZeroMLP(self.hidden, 2 * b.shape[-1], name="net")(a)
    y_b, ld = _affine(b, raw, self.scale_bound, reverse)
    return _join_half(a, y_b, self.parity), ld.sum(-1)


class ActNorm(nn.Module):
  """Per-channel affine y = (x + bias) * exp(log_scale) (Glow): f32[B, ..., C] -> same.

  Data-dependent init: `Module.init` sets bias = -mean and
  log_scale = -log(std + 1e-6) over every axis but the last of the init batch,
  so that batch comes out with zero mean and unit variance per channel.
  Initialized in reverse, the layer starts at the identity instead (its input
  is then not data). log_det = (H * W) * sum(log_scale) for images, the
  positions sharing each channel's parameters.
  """

  @nn.compact
  def __call__(self, x, reverse: bool = False):
    axes = tuple(range(x.ndim - 1))
    c = x.shape[-1]

    def init_bias(rng):
      del rng
      return jnp.zeros((c,), x.dtype) if reverse else -x.mean(axes)

    def init_log_scale(rng):
      del rng
      return jnp.zeros((c,), x.dtype) if reverse else -jnp.log(x.std(axes) + 1e-6)

    bias = self.param("bias", init_bias)
    log_scale = self.param("log_scale", init_log_scale)
    positions = math.prod(x.shape[1:-1])
    log_det = jnp.full(x.shape[:1], positions * log_scale.sum())
    if reverse:
      return x * jnp.exp(-log_scale) - bias, -log_det
    return (x + bias) * jnp.exp(log_scale), log_det


def _random_lu(rng: jax.Array, c: int):
  """P, L, U of a random rotation W = P L U (QR of a Gaussian matrix)."""
  w, _ = jnp.linalg.qr(jax.random.normal(rng, (c, c)))
  return jax.scipy.linalg.lu(w)


class Invertible1x1Conv(nn.Module):
  """Glow's invertible 1x1 convolution, LU-parametrized: f32[B, ..., C] -> same.

  y = W x at every position with W = P L (U + diag(sign_s * exp(log_s))):
  P a fixed permutation and sign_s fixed signs ("constants" collection),
  L unit lower-triangular and U strictly upper-triangular (params "lower",
  "upper"; only the strict triangles are used), log_s (param "log_s").
  At init W is a random rotation. log_det = (H * W) * sum(log_s): O(C), and
  the inverse uses two triangular solves.
  """

  @nn.compact
  def __call__(self, x, reverse: bool = False):
    c = x.shape[-1]
    if self.is_initializing():
      plu = _random_lu(self.make_rng("params"), c)
    else:
      # Flax still traces existing params' initializers to check their shapes.
      plu = (jnp.zeros((c, c), x.dtype),) * 3
    p = self.variable("constants", "P", lambda: plu[0]).value
    sign_s = self.variable("constants", "sign_s", lambda: jnp.sign(jnp.diag(plu[2]))).value
    lower = self.param("lower", lambda rng: jnp.tril(plu[1], -1))
    upper = self.param("upper", lambda rng: jnp.triu(plu[2], 1))
    log_s = self.param("log_s", lambda rng: jnp.log(jnp.abs(jnp.diag(plu[2]))))
    eye = jnp.eye(c, dtype=x.dtype)
    l_mat = jnp.tril(lower, -1) + eye
    u_mat = jnp.triu(upper, 1) + jnp.diag(sign_s * jnp.exp(log_s))
    positions = math.prod(x.shape[1:-1])
    log_det = jnp.full(x.shape[:1], positions * log_s.sum())
    if reverse:
      # W^-1 = U^-1 L^-1 P^T.
      l_inv_pt = jax.scipy.linalg.solve_triangular(l_mat, p.T, lower=True,
                                                   unit_diagonal=True)
      w_inv = jax.scipy.linalg.solve_triangular(u_mat, l_inv_pt, lower=False)
      return jnp.einsum("...c,dc->...d", x, w_inv), -log_det
    w = p @ l_mat @ u_mat
    return jnp.einsum("...c,dc->...d", x, w), log_det


class Squeeze(nn.Module):
  """Space-to-depth 2x2: f32[B, H, W, C] -> f32[B, H/2, W/2, 4C], log_det 0.

  Channel order is (row offset, column offset, c), the inverse of
  `layers.pixel_shuffle(., 2)`, which is the reverse direction.
  """

  @nn.compact
  def __call__(self, x, reverse: bool = False):
    if reverse:
      y = layers.pixel_shuffle(x, 2)
    else:
      if x.shape[1] % 2 or x.shape[2] % 2:
        raise ValueError(f"Squeeze needs even H and W (got {x.shape})")
      y = einops.rearrange(x, "b (h r1) (w r2) c -> b h w (r1 r2 c)", r1=2, r2=2)
    return y, jnp.zeros(x.shape[:1], x.dtype)


def factor_out(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Multi-scale split (RealNVP sec. 3.6): f32[B, H, W, C] -> (h, z).

  h: f32[B, H, W, C//2] continues through the next scale; z:
  f32[B, H, W, C - C//2] leaves the flow and is scored under the prior.
  Volume-preserving (log_det 0); `merge_factored` inverts it.
  """
  n = x.shape[-1] // 2
  return x[..., :n], x[..., n:]


def merge_factored(h: jax.Array, z: jax.Array) -> jax.Array:
  """Inverse of `factor_out`: (f32[..., C//2], f32[..., C - C//2]) -> f32[..., C]."""
  return jnp.concatenate([h, z], axis=-1)


PRIOR_SCALE_BOUND = 3.0


class SplitPrior(nn.Module):
  """Glow's learned split prior as a bijector: f32[B, H, W, C] -> same.

  Before `factor_out`, the part that leaves the flow, z (the last C - C//2
  channels), is standardized given the part that stays, h (the first C//2):
  z' = (z - mu(h)) / sigma(h), with [-log sigma, -mu / sigma] from one
  zero-initialized 3x3 convolution of h, so the layer starts at the identity.
  Scoring z' under N(0, I) is scoring z under N(mu(h), sigma(h)^2), and
  sampling z' ~ N(0, T^2 I) draws z = mu + T sigma eps as Glow does.
  log sigma is bounded to +-`bound` (`bounded_log_scale`).
  """
  bound: float = PRIOR_SCALE_BOUND

  @nn.compact
  def __call__(self, x, reverse: bool = False):
    h, z = factor_out(x)
    raw = layers.Conv(2 * z.shape[-1], (3, 3), kernel_init=nn.initializers.zeros,
                      name="conv")(h)
    z, ld = _affine(z, raw, self.bound, reverse, "tanh")
    return merge_factored(h, z), _sum_event(ld)


class LearnedPrior(nn.Module):
  """Glow's learned top prior as a bijector: per-element y = x * exp(log_s) + t.

  f32[B, ...] -> same, with one (log_s, t) per element of an example (per
  position and channel: the base N(0, I) becomes N(mu, sigma^2) with mu and
  sigma free per pixel). Zero-initialized (the identity); log_s bounded to
  +-`bound`.
  """
  bound: float = PRIOR_SCALE_BOUND

  @nn.compact
  def __call__(self, x, reverse: bool = False):
    raw = self.param("raw", nn.initializers.zeros, (2,) + x.shape[1:])
    raw = jnp.broadcast_to(jnp.concatenate([raw[0], raw[1]], -1),
                           x.shape[:-1] + (2 * x.shape[-1],))
    y, ld = _affine(x, raw, self.bound, reverse, "tanh")
    return y, _sum_event(ld)


class VariationalDequantizer(nn.Module):
  """q(u | k), the dequantization noise of 8-bit images (Ho et al. 2019, Flow++).

  u = sigmoid(g(eps; k)) with eps ~ N(0, I): g is `steps` checkerboard affine
  couplings (alternating parity) whose conditioners also see features of the
  image k (conv3x3 -> relu -> conv3x3 -> relu, `hidden` wide). Every coupling
  starts at the identity, so at init u = sigmoid(eps) (a logistic-normal q).
  Then x = (k + u) / 256 and log P(k) >= E_q[log p(x) - log q(u | k)] - D log 256
  (see `gen_jax.models.accounting`): with q uniform this is the usual bound,
  and a q that follows the model's density inside each bin tightens it.

  Args (call): levels f32[B, H, W, C], the image k scaled to [-1/2, 1/2]; eps
  f32[B, H, W, C] ~ N(0, I) (with `reverse`: u f32[B, H, W, C] in (0, 1)).
  Returns: (u f32[B, H, W, C] in (0, 1), log q(u | k) f32[B] in nats); with
  `reverse`, (eps, log q(u | k)) for the given u: the density anywhere in the cell.
  """
  hidden: int = 16
  steps: int = 4
  scale_bound: float = 2.0

  @nn.compact
  def __call__(self, levels, eps, reverse: bool = False):
    h = jax.nn.relu(layers.Conv(self.hidden, (3, 3), name="features_in")(levels))
    h = jax.nn.relu(layers.Conv(self.hidden, (3, 3), name="features_out")(h))
    couplings = [AffineCoupling("checkerboard", bool(i % 2), self.hidden, self.scale_bound,
                                name=f"coupling_{i}") for i in range(self.steps)]
    def log_sigmoid_slope(e):   # log|du/de| of u = sigmoid(e), summed per example
      return _sum_event(jax.nn.log_sigmoid(e) + jax.nn.log_sigmoid(-e))

    def log_normal(e):
      return dists.std_normal_log_prob(e.reshape(e.shape[0], -1))
    if reverse:   # eps holds u here
      e = jnp.log(eps) - jnp.log1p(-eps)
      log_det = log_sigmoid_slope(e)
      for coupling in reversed(couplings):
        e, ld = coupling(e, reverse=True, cond=h)
        log_det = log_det - ld
      return e, log_normal(e) - log_det
    e, log_det = eps, jnp.zeros(eps.shape[:1], eps.dtype)
    for coupling in couplings:
      e, ld = coupling(e, cond=h)
      log_det = log_det + ld
    return jax.nn.sigmoid(e), log_normal(eps) - log_det - log_sigmoid_slope(e)


class Permute(nn.Module):
  """Fixed permutation of the last axis, log_det 0: f32[B, ..., D] -> same.

  mode="reverse" flips the order (no variables); mode="random" draws a
  permutation at init and stores it as int32[D] "perm" in "constants".
  """
  mode: str = "random"

  @nn.compact
  def __call__(self, x, reverse: bool = False):
    d = x.shape[-1]
    if self.mode == "reverse":
      y = jnp.flip(x, -1)
    elif self.mode == "random":
      perm = self.variable(
          "constants", "perm",
          lambda: jax.random.permutation(self.make_rng("params"), d).astype(jnp.int32)).value
      y = jnp.take(x, jnp.argsort(perm) if reverse else perm, axis=-1)
    else:
      raise ValueError(f"mode must be 'random' or 'reverse' (got {self.mode!r})")
    return y, jnp.zeros(x.shape[:1], x.dtype)


def _knots(raw: jax.Array, bound: float, min_size: float) -> tuple[jax.Array, jax.Array]:
  """Unnormalized bin sizes f32[..., K] -> (knots f32[..., K+1] on [-bound, bound], sizes)."""
  k = raw.shape[-1]
  size = min_size + (1.0 - min_size * k) * jax.nn.softmax(raw, axis=-1)
  cum = jnp.cumsum(size, axis=-1)
  cum = jnp.concatenate([jnp.zeros_like(cum[..., :1]), cum], axis=-1)
  # Pin the ends: the cumulative sum misses 1 by rounding, and the tails must join exactly.
  cum = (2.0 * bound * cum - bound).at[..., 0].set(-bound).at[..., -1].set(bound)
  return cum, cum[..., 1:] - cum[..., :-1]


@functools.partial(jax.jit, static_argnames=("bound", "inverse"))
def rq_spline(x: jax.Array, widths: jax.Array, heights: jax.Array, derivatives: jax.Array,
              bound: float, inverse: bool = False) -> tuple[jax.Array, jax.Array]:
  """Monotone rational-quadratic spline with linear tails (Durkan et al. 2019).

  Args:
    x: f32[...], the points to map (outputs y when `inverse`).
    widths, heights: f32[..., K], unnormalized bin sizes; a softmax (floored
      at MIN_BIN_WIDTH / MIN_BIN_HEIGHT) spreads them over [-bound, bound].
    derivatives: f32[..., K-1], unconstrained slopes at the interior knots,
      mapped by MIN_DERIVATIVE + softplus(. + shift) with the shift chosen so
      0 gives slope 1; the slopes at +-bound are fixed to 1. All zeros gives
      the identity.
    bound: the spline acts on [-bound, bound], identity outside.
    inverse: map y -> x instead of x -> y.

  Returns:
    (out, log_det), both f32[...]: log_det = log|d out / d x| elementwise, in
    nats, and 0 outside [-bound, bound].
  """
  inside = (x >= -bound) & (x <= bound)
  # The spline only ever sees in-range inputs (outside ones are swapped for 0)
  # and the final `where` picks the identity there. Fed out-of-range values,
  # the unused branch can produce inf/NaN, and its zero cotangent times NaN
  # poisons the gradient. A swap rather than jnp.clip, whose gradient is 1/2
  # at exactly +-bound.
  xc = jnp.where(inside, x, 0.0)
  cw, w = _knots(widths, bound, MIN_BIN_WIDTH)
  ch, h = _knots(heights, bound, MIN_BIN_HEIGHT)
  shift = math.log(math.expm1(1.0 - MIN_DERIVATIVE))
  d = MIN_DERIVATIVE + jax.nn.softplus(derivatives + shift)
  ones = jnp.ones_like(d[..., :1])
  d = jnp.concatenate([ones, d, ones], axis=-1)                     # [..., K+1]

  knots = ch if inverse else cw
  idx = jnp.sum(xc[..., None] >= knots[..., 1:-1], axis=-1)         # bin in [0, K-1]
  take = lambda a: jnp.take_along_axis(a, idx[..., None], axis=-1)[..., 0]
  x_k, w_k, y_k, h_k = take(cw), take(w), take(ch), take(h)
  d_k, d_k1 = take(d[..., :-1]), take(d[..., 1:])
  s = h_k / w_k
  curv = d_k1 + d_k - 2.0 * s

  if inverse:
    dy = xc - y_k
    a = h_k * (s - d_k) + dy * curv
    b = h_k * d_k - dy * curv
    c = -s * dy
    disc = jnp.maximum(b * b - 4.0 * a * c, 0.0)
    # The root in [0, 1] written without -b + sqrt(...), which cancels when a -> 0.
    theta = 2.0 * c / (-b - jnp.sqrt(disc))
  else:
    theta = (xc - x_k) / w_k
  t1m = theta * (1.0 - theta)
  denom = s + curv * t1m
  deriv = s * s * (d_k1 * theta**2 + 2.0 * s * t1m + d_k * (1.0 - theta) ** 2)
  log_det = jnp.log(deriv) - 2.0 * jnp.log(denom)                  # log dy/dx at theta
  if inverse:
    out, log_det = x_k + theta * w_k, -log_det
  else:
    out = y_k + h_k * (s * theta**2 + d_k * t1m) / denom
  return jnp.where(inside, out, x), jnp.where(inside, log_det, 0.0)


class RationalQuadraticSpline(nn.Module):
  """Neural spline coupling (Durkan et al. 2019) on vectors: f32[B, D] -> f32[B, D], D >= 2.

  Halves as in `AffineCouplingFlat`; an MLP on the conditioning half gives
  each transformed entry `num_bins` widths and heights and num_bins - 1
  interior slopes for `rq_spline` on [-bound, bound] (identity outside).
  The MLP's output layer starts at zero, so the layer starts at the identity.
  """
  hidden: Sequence[int] = (64, 64)
  num_bins: int = 8
  bound: float = 3.0
  parity: bool = False

  @nn.compact
  def __call__(self, x, reverse: bool = False):
    if x.shape[-1] < 2:
      raise ValueError(f"a coupling needs D >= 2 (got {x.shape[-1]})")
    k = self.num_bins
    a, b = _split_half(x, self.parity)
    raw = _ZeroMLP(self.hidden, b.shape[-1] * (3 * k - 1), name="net")(a)
    raw = raw.reshape(b.shape + (3 * k - 1,))
    y_b, ld = rq_spline(b, raw[..., :k], raw[..., k:2 * k], raw[..., 2 * k:], self.bound,
                        inverse=reverse)
    return _join_half(a, y_b, self.parity), ld.sum(-1)


class MAFTransform(nn.Module):
  """Masked autoregressive flow layer (Papamakarios et al. 2017): f32[B, D] -> f32[B, D].

  Forward is the density direction, data x -> noise u:
    u_i = (x_i - mu_i(x_<i)) * exp(-alpha_i(x_<i)),  log_det = -sum_i alpha_i,
  one MADE pass. Reverse (sampling) needs D sequential MADE passes, since
  x_i needs x_<i first. alpha = scale_bound * tanh(raw / scale_bound), as in
  `AffineCoupling`. The MADE output layer starts at zero (identity layer).
  Follow with a `Permute` so the next layer sees another ordering.
  """
  hidden: Sequence[int] = (64, 64)
  scale_bound: float = 2.0
  activation: Callable = jax.nn.relu

  def setup(self):
    self.made = masked.MADE(tuple(self.hidden), n_params=2, activation=self.activation,
                            zero_init=True)

  def _mu_alpha(self, x):
    out = self.made(x)
    return out[..., 0], bounded_log_scale(out[..., 1], self.scale_bound)

  def __call__(self, x, reverse: bool = False):
    if not reverse:
      mu, alpha = self._mu_alpha(x)
      return (x - mu) * jnp.exp(-alpha), -alpha.sum(-1)
    u = x
    if self.is_initializing():
      self.made(u)  # creates the params outside the loop body

    def body(_, x_cur):
      # After pass i, entries 0..i are exact: entry i depends only on x_<i.
      mu, alpha = self._mu_alpha(x_cur)
      return u * jnp.exp(alpha) + mu

    x_out = jax.lax.fori_loop(0, u.shape[-1], body, jnp.zeros_like(u))
    _, alpha = self._mu_alpha(x_out)
    return x_out, alpha.sum(-1)


class Chain(nn.Module):
  """Composition: forward applies `bijectors` in order, reverse in reverse order.

  log_det is the sum of the layers' log_dets (chain rule), f32[B].
  """
  bijectors: Sequence[nn.Module]

  def __call__(self, x, reverse: bool = False):
    log_det = jnp.zeros(x.shape[:1], x.dtype)
    for bij in (reversed(self.bijectors) if reverse else self.bijectors):
      x, ld = bij(x, reverse=reverse)
      log_det = log_det + ld
    return x, log_det
