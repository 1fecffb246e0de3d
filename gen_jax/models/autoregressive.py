"""Neural autoregressive models with exact likelihoods: NADE, MADE, PixelCNN, Gated PixelCNN.

Model: log p(x) = sum_d log p(x_d | x_<d) in nats per image, each conditional
a head of `gen_jax.nn.autoregressive_nets` (Bernoulli for binary pixels, a
256-way softmax or a discretized logistic mixture for 8-bit pixels). NADE and
MADE see the image flattened to D = H W C; the PixelCNNs order pixels in
raster order and the channels of a pixel R -> G -> B.

Config (config.model; `default_model` lists every key):
  arch         "nade" | "made" | "pixelcnn" | "gated_pixelcnn"
  likelihood   "bernoulli" (data.variant binarized_*) | "categorical256" |
               "logistic_mixture" (data.variant grayscale: x = k / 255); NADE
               is Bernoulli only
  hidden       NADE: (H,); MADE: hidden widths, e.g. (500,) or (8000, 8000)
  order        "natural" | "random". NADE "random" is order-agnostic training
               (Uria et al. 2014): a fresh random ordering per example and
               step. MADE "random": each mask has its own random input ordering.
  num_masks    MADE: N masks (ordering + connectivity), one drawn per training
               step (connectivity-agnostic training, Germain et al. 2015);
               NADE with order "random": the K fixed random orderings of the
               test ensemble. The test likelihood of K > 1 masks/orderings is the
               mixture log p(x) = logsumexp_k log p_k(x) - log K, a valid
               likelihood (never an average of logits).
  mask_seed    seed of the MADE degrees / NADE test orderings
  direct, activation   MADE direct input->output weights; hidden activation
  features, layers, first_kernel, kernel, out_hidden   PixelCNN residual
               stream width and blocks / Gated PixelCNN width and layers
  num_mixtures logistic_mixture components
  num_classes  0, or class-conditional p(x | y) (needs data.labels = True)

`eval_fn` returns per image: `nll` = -log p(x) in nats (exact); with K > 1,
`nll_single` = -log p_0(x) of mask/ordering 0 alone; for 8-bit data `bpd` =
nll / (D ln 2). For a class-conditional model `nll` is the marginal
-log p(x) = -log (1/C) sum_y p(x | y) (a uniform class prior; C passes), and a
batch with labels also gets `nll_given_y` = -log p(x | y). The training loss
is the mean nll (nats per image). `sample` draws with one jitted scan over
positions, cached by default (`cached=False` re-runs the whole forward pass
per position); MADE and NADE sample from mask/ordering 0; conditional models
take `labels` (default: classes 0, 1, ..., C-1 repeated).
"""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax import errors, types
from gen_jax.inference import ar_sampling
from gen_jax.nn import autoregressive_nets as arn
from gen_jax.nn import layers

ARCHS = ("nade", "made", "pixelcnn", "gated_pixelcnn")
ORDERS = ("natural", "random")
PIXEL_ARCHS = ("pixelcnn", "gated_pixelcnn")


def default_model(**kw) -> ml_collections.ConfigDict:
  """Every config.model key, with values for a small binary MADE; override per experiment."""
  c = dict(arch="made", likelihood="bernoulli", hidden=(500,), order="natural", num_masks=1,
           mask_seed=0, direct=False, activation="relu", features=64, layers=5,
           first_kernel=7, kernel=3, out_hidden=64, num_mixtures=5, num_classes=0)
  c.update(kw)
  return ml_collections.ConfigDict(c)


def _check(m, config, x_shape: tuple) -> None:
  for key, value, valid in (("arch", m.arch, ARCHS), ("likelihood", m.likelihood, arn.LIKELIHOODS),
                            ("order", m.order, ORDERS),
                            ("activation", m.activation, layers.ACTIVATIONS)):
    if value not in valid:
      raise errors.ConfigError(errors.choices(f"model.{key}", value, valid))
  variant = config.data.variant
  if m.likelihood == "bernoulli" and not variant.startswith("binarized"):
    raise errors.ConfigError(f"likelihood 'bernoulli' needs binary pixels; data.variant is "
                             f"{variant!r} (use binarized_static/binarized_dynamic)")
  if m.likelihood != "bernoulli" and variant != "grayscale":
    raise errors.ConfigError(f"likelihood {m.likelihood!r} models 8-bit levels k/255 and needs "
                             f"data.variant 'grayscale' (got {variant!r})")
  if m.arch == "nade" and (m.likelihood != "bernoulli" or len(m.hidden) != 1):
    raise errors.ConfigError(f"arch 'nade' is Bernoulli with one hidden layer: set likelihood "
                             f"'bernoulli' and hidden=(H,) (got {m.likelihood!r}, {m.hidden})")
  if m.arch == "made" and (not m.hidden or min(m.hidden) < 1):
    raise errors.ConfigError(f"arch 'made' needs hidden widths >= 1 (got {m.hidden})")
  if m.num_masks < 1 or (m.num_masks > 1 and m.arch == "nade" and m.order != "random"):
    raise errors.ConfigError(f"model.num_masks must be >= 1, and > 1 for NADE only with order "
                             f"'random' (got {m.num_masks}, order {m.order!r})")
  if m.likelihood == "logistic_mixture" and m.num_mixtures < 1:
    raise errors.ConfigError(f"model.num_mixtures must be >= 1 (got {m.num_mixtures})")
  if m.num_classes < 0 or (m.num_classes and not config.data.labels):
    raise errors.ConfigError(f"model.num_classes={m.num_classes} needs data.labels = True "
                             f"(and >= 0)")
  if m.arch in PIXEL_ARCHS:
    if len(x_shape) != 3:
      raise errors.ConfigError(f"arch {m.arch!r} needs images (H, W, C); data has shape {x_shape}")
    c, step = x_shape[-1], 2 if m.arch == "pixelcnn" else 1
    if m.features % (step * c) or m.out_hidden % c or m.layers < 1:
      raise errors.ConfigError(
          f"arch {m.arch!r} splits features{' / 2' if step == 2 else ''} and out_hidden into "
          f"{c} colour groups: both must be multiples of {c} (got features={m.features}, "
          f"out_hidden={m.out_hidden}), layers >= 1 (got {m.layers})")
    if m.first_kernel % 2 == 0 or m.kernel % 2 == 0:
      raise errors.ConfigError(f"kernels must be odd (got {m.first_kernel}, {m.kernel})")
  elif math.prod(x_shape) < 2:
    raise errors.ConfigError(f"arch {m.arch!r} needs at least 2 dimensions (got {x_shape})")


def build(m: ml_collections.ConfigDict, x_shape: tuple):
  """The network of `config.model` for examples of shape `x_shape` (see autoregressive_nets)."""
  dims, head = math.prod(x_shape), arn.head_size(m.likelihood, m.num_mixtures)
  if m.arch == "nade":
    return arn.NADE(dims, m.hidden[0], m.num_classes)
  if m.arch == "made":
    return arn.MADE(dims, tuple(m.hidden), head, m.direct, m.num_classes,
                    layers.ACTIVATIONS[m.activation])
  cls, depth = (arn.PixelCNN, "blocks") if m.arch == "pixelcnn" else (arn.GatedPixelCNN, "layers")
  return cls(tuple(x_shape), m.features, **{depth: m.layers}, head=head,
             first_kernel=m.first_kernel, kernel=m.kernel, out_hidden=m.out_hidden,
             num_classes=m.num_classes)


def _rbg_key(rng: jax.Array) -> jax.Array:
  """An "rbg" key with the bits of the threefry key `rng`, for parameter initialization.

  XLA compiles threefry-based initializers slowly when there are many of them:
  the smoke Gated PixelCNN's init took 24 s to compile with threefry keys and
  5 s with RBG keys on a loaded 2-core CPU (the values differ, the
  distributions do not). Still a pure function of `rng`.
  """
  data = jax.random.key_data(rng)
  return jax.random.wrap_key_data(jnp.concatenate([data, data ^ jnp.uint32(0x9E3779B9)]),
                                  impl="rbg")


def made_degrees_of(m: ml_collections.ConfigDict, dims: int) -> list[np.ndarray]:
  """The MADE degrees of `config.model` (`arn.made_degrees` with its keys)."""
  return arn.made_degrees(dims, tuple(m.hidden), m.num_masks, m.order, m.mask_seed)


def nade_orderings(dims: int, k: int, order: str, seed: int) -> np.ndarray:
  """i32[k, D]: NADE's orderings: the natural one, or k seeded random ones (the test ensemble)."""
  if order == "natural":
    return np.arange(dims, dtype=np.int32)[None]
  rng = np.random.default_rng(seed)
  return np.stack([rng.permutation(dims) for _ in range(k)]).astype(np.int32)


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """Builds the autoregressive family from `config.model` for the image field "x"."""
  x_shape = tuple(spec["x"].shape)
  m = config.model
  _check(m, config, x_shape)
  net = build(m, x_shape)
  dims, lik, ncls = math.prod(x_shape), m.likelihood, m.num_classes
  eight_bit = lik != "bernoulli"
  flat = m.arch in ("nade", "made")
  num_k = m.num_masks if m.arch == "made" or (m.arch == "nade" and m.order == "random") else 1
  if m.arch == "made":
    degrees = [jnp.asarray(d) for d in made_degrees_of(m, dims)]
  orders = jnp.asarray(nade_orderings(dims, num_k, m.order, m.mask_seed))

  def apply(params, *args, **kw):
    return net.apply({"params": params["model"]}, *args, **kw)

  def forward(params, x, y, k, order=None):
    """Head outputs f32[B, dims, P] (flat) or f32[B, H, W, C, P] of mask/ordering k."""
    if m.arch == "made":
      return apply(params, x.reshape(x.shape[0], -1), [d[k] for d in degrees], y)
    if m.arch == "nade":
      order = orders[k] if order is None else order
      return apply(params, x.reshape(x.shape[0], -1), order, y)[..., None]
    return apply(params, x, y)

  def log_prob(params, x, y, k=0, order=None):
    """log p_k(x | y) in nats per image: f32[B]."""
    out = forward(params, x, y, k, order)
    xx = x.reshape(x.shape[0], -1) if flat else x
    lp = arn.head_log_prob(lik, out, xx)
    return lp.reshape(x.shape[0], -1).sum(-1)

  def ensemble_log_prob(params, x, y):
    """(log (1/K) sum_k p_k(x | y), log p_0(x | y)): f32[B] each."""
    lps = jax.lax.map(lambda k: log_prob(params, x, y, k), jnp.arange(num_k))
    return jax.nn.logsumexp(lps, axis=0) - math.log(num_k), lps[0]

  def init(rng, batch):
    x = batch["x"][:1].astype(types.real_dtype())
    y = jnp.zeros((1,), jnp.int32) if ncls else None
    if m.arch == "made":
      args = (x.reshape(1, -1), [d[0] for d in degrees], y)
    elif m.arch == "nade":
      args = (x.reshape(1, -1), orders[0], y)
    else:
      args = (x, y)
    return {"model": net.init(_rbg_key(rng), *args)["params"]}, {}

  def labels_of(batch):
    return batch["y"].astype(jnp.int32) if ncls else None

  def loss(player, params, state, batch, rng):
    del player
    x, y = batch["x"].astype(types.real_dtype()), labels_of(batch)
    if m.arch == "made":        # connectivity-agnostic: one of the N masks per step
      lp = log_prob(params, x, y, k=jax.random.randint(rng, (), 0, num_k))
    elif m.arch == "nade" and m.order == "random":    # order-agnostic: an ordering per example
      order = jnp.argsort(jax.random.uniform(rng, (x.shape[0], dims)), axis=-1)
      lp = log_prob(params, x, y, order=order)
    else:
      lp = log_prob(params, x, y)
    nll = -lp.mean()
    metrics = {"bpd": nll / (dims * math.log(2.0))} if eight_bit else {}
    return nll, (state, metrics)

  def eval_fn(params, state, batch, rng):
    del state, rng
    x = batch["x"].astype(types.real_dtype())
    out = {}
    if ncls:       # p(x) = (1/C) sum_y p(x | y): one pass per class
      both = jax.lax.map(lambda c: ensemble_log_prob(
          params, x, jnp.full(x.shape[:1], c, jnp.int32)), jnp.arange(ncls))    # [C, B] each
      lp, lp0 = (jax.nn.logsumexp(v, axis=0) - math.log(ncls) for v in both)
      if "y" in batch:
        out["nll_given_y"] = -jnp.take_along_axis(both[0], labels_of(batch)[None], 0)[0]
    else:
      lp, lp0 = ensemble_log_prob(params, x, None)
    out["nll"] = -lp
    if num_k > 1:
      out["nll_single"] = -lp0
    if eight_bit:
      out["bpd"] = -lp / (dims * math.log(2.0))
    return out

  def draw(out, key):
    return arn.head_sample(lik, out, key)

  def sample(params, state, rng, n, cached=True, labels=None):
    """f32[n, H, W, C] in data-variant values ({0, 1} or k / 255)."""
    del state
    y = None
    if ncls:
      y = (jnp.arange(n) % ncls if labels is None else jnp.asarray(labels)).astype(jnp.int32)
    dt = types.real_dtype()
    if flat:
      x0 = jnp.zeros((n, dims), dt)
      if m.arch == "made":
        deg = [d[0] for d in degrees]
        order = jnp.argsort(deg[0])
        extra = (deg,)
      else:
        deg, order, extra = None, orders[0], ()
      if cached:
        cache = (apply(params, n, deg, y, method="init_cache") if m.arch == "made" else
                 apply(params, n, y, method="init_cache"))
        x = ar_sampling.sample_sequence(
            cache, lambda c, d: apply(params, c, d, *extra, method="step"),
            lambda c, d, v: apply(params, c, d, v, *extra, method="write"), draw, order, x0, rng)
      else:
        x = ar_sampling.sample_sequence_naive(
            lambda xx: forward(params, xx, y, 0), draw, order, x0, rng)
      return x.reshape((n,) + x_shape)
    x0 = jnp.zeros((n,) + x_shape, dt)
    if not cached:
      return ar_sampling.sample_raster_naive(lambda xx: apply(params, xx, y), draw, x0, rng)
    return ar_sampling.sample_raster(
        apply(params, n, y, method="init_cache"),
        lambda c, i: apply(params, c, i, method="row"),
        lambda c, i, j: apply(params, c, i, j, method="pixel"),
        lambda c, i, j, ch, v: apply(params, c, i, j, ch, v, method="write"), draw, x0, rng)

  ens = (f"the mixture of {num_k} {'masks' if m.arch == 'made' else 'orderings'}, "
         f"logsumexp_k log p_k(x) - log {num_k}" if num_k > 1 else "")
  marg = "; marginal over classes, uniform prior" if ncls else ""
  units = {"nll": "nats per image, -log p(x), exact" + (f" ({ens})" if ens else "") + marg}
  if num_k > 1:
    units["nll_single"] = "nats per image, -log p_0(x) of mask/ordering 0 alone, exact"
  if ncls:
    units["nll_given_y"] = "nats per image, -log p(x | y), exact"
  if eight_bit:
    units["bpd"] = f"bits/dim: nll / ({dims} ln 2), 8-bit pixels, exact"
  return types.Family(players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
                      eval_units=units)

