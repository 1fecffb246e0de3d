"""Normalizing flows: RealNVP, Glow, MAF and coupling flows (affine or neural spline).

Model: z = f(y) with y = preprocess(x) (`accounting`), p(z) = N(0, I), so
  log p(x) = log N(f(y); 0, I) + log|det df/dy| + log|det dy/dx|   (nats/example).
The bijectors are in `gen_jax.nn.bijectors`; every affine scale is
log_s = bound * tanh(raw / bound) and every conditioner's last layer starts at
zero, so each layer starts at the identity and no single step can blow a scale
up to inf/NaN. Spline couplings are the identity outside [-tail_bound,
tail_bound] with finite gradients there.

Architectures (config.model.arch):
  realnvp  multi-scale (Dinh et al. 2017): each of the first L-1 scales is
           `steps` checkerboard couplings, a squeeze, `steps` channel
           couplings and a factor-out of half the channels; the last scale is
           steps + 1 checkerboard couplings. ActNorm after every coupling
           stands in for the paper's batch normalization (`actnorm`).
  glow     Glow (Kingma & Dhariwal 2018): L levels of [squeeze, K x (ActNorm,
           invertible 1x1 conv, affine channel coupling)], factor-out between
           levels; K = `steps`.
  maf      MAF (Papamakarios et al. 2017) on flattened data: K = `steps` x
           (MADE affine layer, order reversal), optional ActNorm per layer.
  nsf      coupling neural spline flow (Durkan et al. 2019) on flattened data:
           `steps` rational-quadratic spline couplings, alternating halves.
  coupling affine couplings on flattened data (RealNVP for vectors).
Image architectures need data of shape (H, W, C); flat ones flatten it.
Factored-out variables are concatenated into one z: f32[B, D].
With `learned_prior` (Glow's learntop and split priors), each factored-out
part is standardized given the part that stays (`bij.SplitPrior`) and the
top level by a learned per-pixel affine (`bij.LearnedPrior`): the base is
still N(0, I) in z, so scoring and temperature sampling are unchanged.
With `dequantization="variational"` (image flows on 8-bit data), the uniform
noise of the data variant is replaced by noise from a learned conditional flow
q(u | k) (`bij.VariationalDequantizer`, Flow++), trained jointly; the
reported bits/dim are then a one-sample estimate of the variational bound.

Sampling draws z ~ N(0, T^2 I) with temperature T (`temperature`; Glow used
T = 0.7) and inverts the flow; images are clipped to [0, 1].

`eval_fn` returns, per example, `nll` (nats; the density of the data-variant
value x) and, for dequantized 8-bit data, `bpd` (bits/dim on the discrete
8-bit scale, see `accounting.bits_per_dim`). The training loss is the mean
bits/dim (dequantized data) or nats per example (continuous data).
`eval_fn(..., k=K)` with K > 1 (8-bit data; an evaluator's `kwargs.k`) returns
instead `nll_iw` / `bpd_iw`: -log (1/K) sum_i p(x_i) / q(u_i | k) over K
dequantizations x_i = (k + u_i) / 256 of each image (u_i uniform, or from q),
the importance-weighted bound on -log P(k) - D ln 256 (Burda et al. 2016; Ho et
al. 2019, sec. 3.1): never looser, in expectation, than K = 1's, and equal to
-log P(k) - D ln 256 as K grows.
"""
import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types
from gen_jax.models import accounting
from gen_jax.nn import bijectors as bij
from gen_jax.nn import dists

IMAGE_ARCHS = ("realnvp", "glow")
FLAT_ARCHS = ("maf", "nsf", "coupling")
ARCHS = IMAGE_ARCHS + FLAT_ARCHS
DEQUANTIZATION = ("uniform", "variational")


def _image_layout(arch: str, levels: int, shape: tuple) -> tuple[list, tuple]:
  """Static shapes: (factored-out z shape per level but the last, final shape)."""
  h, w, c = shape
  outs = []
  for level in range(levels):
    last = level == levels - 1
    if arch == "glow" or not last:
      if h % 2 or w % 2:
        raise errors.ConfigError(
            f"{arch} with {levels} levels squeezes {h}x{w} at level {level}; "
            f"H and W must stay even (use fewer levels)")
      h, w, c = h // 2, w // 2, 4 * c
    if not last:
      outs.append((h, w, c - c // 2))
      c = c // 2
  return outs, (h, w, c)


class ImageFlow(nn.Module):
  """RealNVP / Glow: x f32[B, H, W, C] -> (z f32[B, HWC], log_det f32[B]); reverse z -> x."""
  arch: str
  image_shape: tuple
  levels: int = 3
  steps: int = 3
  hidden: int = 64
  scale_bound: float = 2.0
  actnorm: bool = True
  coupling_scale: str = "tanh"
  learned_prior: bool = False
  dequantization: str = "uniform"
  deq_hidden: int = 16
  deq_steps: int = 4

  def setup(self):
    self.z_shapes, self.final_shape = _image_layout(self.arch, self.levels, self.image_shape)
    stages = []
    for level in range(self.levels):
      last = level == self.levels - 1
      layers = []
      if self.arch == "glow":
        layers.append(bij.Squeeze())
        for k in range(self.steps):
          layers += [bij.ActNorm(), bij.Invertible1x1Conv(),
                     bij.AffineCoupling("channel", bool(k % 2), self.hidden, self.scale_bound,
                                         self.coupling_scale)]
      else:
        def coupling(mask, k):
          c = [bij.AffineCoupling(mask, bool(k % 2), self.hidden, self.scale_bound,
                                 self.coupling_scale)]
          return c + [bij.ActNorm()] if self.actnorm else c
        for k in range(self.steps + int(last)):
          layers += coupling("checkerboard", k)
        if not last:
          layers.append(bij.Squeeze())
          for k in range(self.steps):
            layers += coupling("channel", k)
      stages.append(bij.Chain(tuple(layers)))
    self.stages = stages
    if self.learned_prior:
      self.priors = [bij.SplitPrior() for _ in range(self.levels - 1)] + [bij.LearnedPrior()]
    if self.dequantization == "variational":
      self.dequantizer = bij.VariationalDequantizer(self.deq_hidden, self.deq_steps)

  def dequantize(self, levels, eps, reverse: bool = False):
    """q(u | k) (`bij.VariationalDequantizer`): (u f32[B, H, W, C], log q f32[B] nats);
    with `reverse`, eps holds u and the result is (eps, log q(u | k))."""
    return self.dequantizer(levels, eps, reverse)

  def __call__(self, x, reverse: bool = False):
    b = x.shape[0]
    log_det = jnp.zeros((b,), x.dtype)
    if not reverse:
      zs, h = [], x
      for level, stage in enumerate(self.stages):
        h, ld = stage(h)
        log_det = log_det + ld
        if self.learned_prior:
          h, ld = self.priors[level](h)
          log_det = log_det + ld
        if level < self.levels - 1:
          h, z = bij.factor_out(h)
          zs.append(z.reshape(b, -1))
      return jnp.concatenate(zs + [h.reshape(b, -1)], axis=-1), log_det
    sizes = [math.prod(s) for s in self.z_shapes]
    pieces = jnp.split(x, list(itertools.accumulate(sizes)), axis=-1)
    h = pieces[-1].reshape((b,) + self.final_shape)
    for level in reversed(range(self.levels)):
      if level < self.levels - 1:
        h = bij.merge_factored(h, pieces[level].reshape((b,) + self.z_shapes[level]))
      if self.learned_prior:
        h, ld = self.priors[level](h, reverse=True)
        log_det = log_det + ld
      h, ld = self.stages[level](h, reverse=True)
      log_det = log_det + ld
    return h, log_det


class FlatFlow(nn.Module):
  """MAF / NSF / affine coupling flow on vectors: f32[B, D] -> (f32[B, D], log_det f32[B])."""
  arch: str
  steps: int = 5
  hidden: tuple = (100, 100)
  scale_bound: float = 2.0
  actnorm: bool = False
  num_bins: int = 8
  tail_bound: float = 3.0

  def setup(self):
    layers = []
    for k in range(self.steps):
      if self.actnorm:
        layers.append(bij.ActNorm())
      if self.arch == "maf":
        layers += [bij.MAFTransform(tuple(self.hidden), self.scale_bound),
                   bij.Permute("reverse")]
      elif self.arch == "nsf":
        layers.append(bij.RationalQuadraticSpline(tuple(self.hidden), self.num_bins,
                                                  self.tail_bound, bool(k % 2)))
      else:
        layers.append(bij.AffineCouplingFlat(tuple(self.hidden), bool(k % 2), self.scale_bound))
    self.chain = bij.Chain(tuple(layers))

  def __call__(self, x, reverse: bool = False):
    return self.chain(x, reverse=reverse)


def _check(m: ml_collections.ConfigDict, variant: str, x_shape: tuple) -> None:
  if m.arch not in ARCHS:
    raise errors.ConfigError(errors.choices("model.arch", m.arch, ARCHS))
  if variant not in ("dequantized_8bit", "continuous"):
    raise errors.ConfigError(
        f"flows are densities and need data.variant 'dequantized_8bit' (8-bit images) "
        f"or 'continuous' (got {variant!r})")
  if m.arch in IMAGE_ARCHS and len(x_shape) != 3:
    raise errors.ConfigError(f"arch {m.arch!r} needs images (H, W, C); data has shape {x_shape}")
  if m.arch in IMAGE_ARCHS:
    _image_layout(m.arch, m.levels, tuple(x_shape))   # raises on odd sizes
  if m.arch in ("nsf", "coupling") and math.prod(x_shape) < 2:
    raise errors.ConfigError(f"arch {m.arch!r} needs at least 2 dimensions (got {x_shape})")
  if m.steps < 1 or (m.arch in IMAGE_ARCHS and m.levels < 1):
    raise errors.ConfigError(f"model.steps and model.levels must be >= 1 (got {m.steps}, "
                             f"{m.get('levels')})")
  if m.arch in IMAGE_ARCHS and m.get("coupling_scale", "tanh") not in bij.SCALES:
    raise errors.ConfigError(errors.choices("model.coupling_scale", m.coupling_scale, bij.SCALES))
  deq = m.get("dequantization", "uniform")
  if deq not in DEQUANTIZATION:
    raise errors.ConfigError(errors.choices("model.dequantization", deq, DEQUANTIZATION))
  if deq == "variational" and (variant != "dequantized_8bit" or m.arch not in IMAGE_ARCHS):
    raise errors.ConfigError(
        f"model.dequantization 'variational' needs 8-bit images (data.variant "
        f"'dequantized_8bit') and an image arch {IMAGE_ARCHS} (got {variant!r}, {m.arch!r})")
  if m.temperature <= 0:
    raise errors.ConfigError(f"model.temperature must be > 0 (got {m.temperature})")
  accounting._check(m.preprocess, m.logit_alpha)  # pylint: disable=protected-access


def build(m: ml_collections.ConfigDict, x_shape: tuple) -> nn.Module:
  """The flow module of `config.model` for data of shape `x_shape` (model space y -> z).

  Image flows take y: f32[B, H, W, C]; flat flows take y: f32[B, D] (flattened).
  Both return (z: f32[B, D], log_det: f32[B]); `reverse=True` maps z back to y.
  Variables: {"params": params["model"], **state} of the family.
  """
  if m.arch in IMAGE_ARCHS:
    return ImageFlow(m.arch, tuple(x_shape), m.levels, m.steps, m.hidden, m.scale_bound,
                     m.actnorm, m.get("coupling_scale", "tanh"), m.get("learned_prior", False),
                     m.get("dequantization", "uniform"), m.get("deq_hidden", 16),
                     m.get("deq_steps", 4))
  return FlatFlow(m.arch, m.steps, tuple(m.hidden), m.scale_bound, m.actnorm,
                  m.get("num_bins", 8), m.get("tail_bound", 3.0))


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """Builds the flow family from `config.model` for examples of shape `x_shape`."""
  x_shape = tuple(spec["x"].shape)   # the image (H, W, C) or point (D,) field
  m = config.model
  variant = config.data.variant
  _check(m, variant, x_shape)
  dims = math.prod(x_shape)
  discrete = variant == "dequantized_8bit"
  flow = build(m, x_shape)
  to_flow = (lambda y: y) if m.arch in IMAGE_ARCHS else (lambda y: y.reshape(y.shape[0], -1))

  variational = m.get("dequantization", "uniform") == "variational"

  def variables(params, state):
    return {"params": params["model"], **state}

  def levels_and_noise(x, rng):
    """(k, k scaled to [-1/2, 1/2], eps ~ N(0, I)) for dequantized x = (k + u) / 256, k 8-bit.

    k = floor(256 x): exact unless k + u rounded up to k + 1 in float32 (u within
    2^-17 of 1, a ~1e-5 chance per pixel), which reads the pixel one level up.
    """
    k = jnp.clip(jnp.floor(x * accounting.LEVELS_8BIT), 0, accounting.LEVELS_8BIT - 1)
    return k, k / (accounting.LEVELS_8BIT - 1) - 0.5, jax.random.normal(rng, x.shape, x.dtype)

  def log_prob(params, state, x, rng=None):
    """log p(x) in nats per example, x in data-variant space: f32[B].

    With variational dequantization, x's uniform noise is replaced by u ~ q(u | k)
    (drawn with `rng`) and the value is log p((k + u) / 256) - log q(u | k): a
    one-sample estimate of a lower bound on log P(k) + D log 256.
    """
    log_q = 0.0
    if variational:
      k, levels, eps = levels_and_noise(x, rng)
      u, log_q = flow.apply(variables(params, state), levels, eps,
                            method=ImageFlow.dequantize)
      x = (k + u) / accounting.LEVELS_8BIT
    y, ld_pre = accounting.preprocess(x, m.preprocess, m.logit_alpha)
    z, ld_flow = flow.apply(variables(params, state), to_flow(y))
    return dists.std_normal_log_prob(z) + ld_flow + ld_pre - log_q

  def init(rng, batch):
    y, _ = accounting.preprocess(batch["x"], m.preprocess, m.logit_alpha)
    v = flow.init({"params": rng}, to_flow(y))   # forward on data: ActNorm data init
    params = {"model": v["params"]}
    if variational:
      rng_q, rng_eps = jax.random.split(jax.random.fold_in(rng, 1))
      _, levels, eps = levels_and_noise(batch["x"], rng_eps)
      q = flow.init({"params": rng_q}, levels, eps, method=ImageFlow.dequantize)
      params = {"model": {**v["params"], **q["params"]}}
    state = {k: val for k, val in v.items() if k != "params"}
    return params, state

  def loss(player, params, state, batch, rng):
    del player
    nll = -log_prob(params, state, batch["x"], rng)
    if discrete:
      bpd = accounting.bits_per_dim(nll, dims)
      return bpd.mean(), (state, {"nll": nll.mean()})
    return nll.mean(), (state, {})

  def eval_fn(params, state, batch, rng, k=1):
    """{"nll", "bpd"}: f32[B] (nats, bits/dim); with k > 1, {"nll_iw", "bpd_iw"}."""
    if k == 1:
      nll = -log_prob(params, state, batch["x"], rng)
      return {"nll": nll, **({"bpd": accounting.bits_per_dim(nll, dims)} if discrete else {})}
    if not discrete or k < 1:
      raise errors.ConfigError(
          f"the flow's eval kwargs.k={k} (dequantizations per image) needs 8-bit data "
          f"(data.variant 'dequantized_8bit') and k >= 1 (got variant {variant!r})")
    levels = jnp.clip(jnp.floor(batch["x"] * accounting.LEVELS_8BIT), 0,
                      accounting.LEVELS_8BIT - 1)

    def one(r):   # log p(x_i) - log q(u_i | k) for a fresh dequantization of every image
      r_u, r_q = jax.random.split(r)
      u = jax.random.uniform(r_u, levels.shape, levels.dtype)
      return log_prob(params, state, (levels + u) / accounting.LEVELS_8BIT, r_q)

    log_w = jax.lax.map(one, jax.random.split(rng, k))   # f32[k, B], one pass at a time
    nll = -(jax.nn.logsumexp(log_w, axis=0) - math.log(k))
    return {"nll_iw": nll, "bpd_iw": accounting.bits_per_dim(nll, dims)}

  def decode(params, state, z):
    y, _ = flow.apply(variables(params, state), z, reverse=True)
    x = accounting.postprocess(y.reshape((z.shape[0],) + tuple(x_shape)), m.preprocess,
                               m.logit_alpha)
    return jnp.clip(x, 0.0, 1.0) if discrete else x

  def encode(params, state, x):
    y, _ = accounting.preprocess(x, m.preprocess, m.logit_alpha)
    return flow.apply(variables(params, state), to_flow(y))[0]

  def sample(params, state, rng, n, temperature=None):
    t = m.temperature if temperature is None else temperature
    return decode(params, state, t * jax.random.normal(rng, (n, dims)))

  units = {"nll": "nats per example, -log p(x) of the "
                  + ("dequantized x in [0,1)^D" if discrete else "continuous data")}
  if variational:
    units["nll"] = ("nats per example, -(log p(x) - log q(u | k)) with x = (k + u) / 256, "
                    "u ~ q: a one-sample estimate of an upper bound on -log P(k) - D ln 256")
  if discrete:
    units["bpd"] = "bits/dim on the 8-bit scale: (nll + D ln 256) / (D ln 2)"
    units["nll_iw"] = ("nats per example, -log (1/K) sum_i p(x_i) / q(u_i | k) over the "
                       "evaluator's K = kwargs.k dequantizations x_i = (k + u_i) / 256 ("
                       + ("u_i ~ q" if variational else "u_i uniform")
                       + "): an importance-weighted upper bound on -log P(k) - D ln 256")
    units["bpd_iw"] = ("bits/dim on the 8-bit scale, importance-weighted over kwargs.k "
                       "dequantizations: (nll_iw + D ln 256) / (D ln 2), an upper bound")
  image = len(x_shape) == 3
  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      encode=encode if image else None, decode=decode if image else None,
      eval_units=units)
