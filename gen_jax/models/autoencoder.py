"""Autoencoders (plain, denoising, super-resolution) with a latent mixture to sample from.

Model: a deterministic encoder z = f(x), f32[L], and a decoder whose output
is one logit per pixel; the reconstruction (decoder mean) is
x^ = sigmoid(g(z)) in [0, 1]. Images are on the data variant's [0, 1] scale
(8-bit images as `grayscale`: the gray values x / 255 are the targets).

Training input (config.model.corruption: kind, level, level_max): the loss
compares decode(encode(c(x))) with the CLEAN x, where c is
`gen_jax.data.corruptions.corrupt(kind, x, rng, level)` drawn afresh every
step:
  none                          a plain autoencoder
  gaussian, masking, salt_pepper a denoising autoencoder (Vincent et al. 2010)
  downsample                    a super-resolution autoencoder (input: the
                                bicubic upsampling of the level x level
                                area-downsampled image)
  mutate                        random 8-bit values at rate `level`
With kind "gaussian" and level_max > level, each example's sigma is drawn
uniformly from [level, level_max] (the same clipped additive noise, one sigma
per example), so one model denoises a range of noise levels.

Reconstruction loss (config.model.loss), per example:
  bce  -sum_d [x_d log x^_d + (1 - x_d) log(1 - x^_d)], nats per image: the
       Bernoulli cross-entropy, with gray values in [0, 1] as soft targets
       (for non-binary x it is not a likelihood: its minimum is the targets'
       entropy, not 0)
  mse  mean_d (x^_d - x_d)^2, per pixel on the [0, 1] scale

Latent density (so the autoencoder can sample): a diagonal-covariance
Gaussian mixture with K = `latent_components` components over the codes
z = stop_gradient(encode(clean x)) of the training batches, fitted by online
EM (Cappe & Moulines 2009) in the non-gradient `state`:
  state["step"]   i32[]: train steps seen (loss calls)
  state["stats"]  running averages over examples of the responsibility-
                  weighted sufficient statistics: n f[K] = E[r_k],
                  s1 f[K, L] = E[r_k z], s2 f[K, L] = E[r_k z^2]
For the first `latent_fit_start_steps` steps the statistics are those of K
copies of N(0, I) (an untrained mixture is the standard normal). At the start
step they are seeded from k-means++ and Lloyd iterations on the batch's codes
(hard assignments, `gmm.kmeans`); at every later step t (t = 1, 2, ... after
the start) the E-step under the current mixture gives the batch statistics S
and s <- s + gamma_t (S - s), gamma_t = max(1 - latent_ema, 1 / (t + 1)):
a plain running mean of the first 1 / (1 - latent_ema) batches, then an
exponential moving average, which follows the codes as the encoder trains.
The M-step is the closed form pi_k = n_k / sum n, mu_k = s1_k / n_k,
var_k = s2_k / n_k - mu_k^2 + latent_var_floor (the floor is added, as
scikit-learn's reg_covar, so every variance is >= it). On a fixed set of
codes its fixed points are those of batch EM.

`sample` draws codes from the mixture and decodes them (images in [0, 1]).
`eval_fn` gives per example: recon_mse (per pixel, clean input), recon_bce
(nats per image, clean input), recon_mse_corrupted (the training corruption
applied to the input, scored against the clean image), corrupted_input_mse
(the corrupted input itself against the clean image: the identity baseline)
and latent_nll (-log density of the clean code under the mixture, nats).

Nets (config.model.arch): "mlp" x -> hidden... -> L (the VAE's MLP, e.g.
784-200-200-L), mirrored in the decoder; "conv" len(hidden) stride-2 3x3
convs and a dense code layer, decoded by a dense stem and sub-pixel x2
upsampling per stage (`gen_jax.nn.layers`; DCAE-style, Masci et al. 2011,
Ruff et al. 2018), for H and W divisible by 2**len(hidden) (28x28, 8x8).

Config (config.model): arch, hidden, latent, activation, loss,
corruption.{kind, level, level_max}, latent_components, latent_ema,
latent_fit_start_steps, latent_var_floor, latent_kmeans_iters.
"""
import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types
from gen_jax.data import corruptions
from gen_jax.data import spec as spec_lib
from gen_jax.models import gmm, vae
from gen_jax.nn import dists, layers

ARCHS = ("mlp", "conv")
LOSSES = ("bce", "mse")
# Image variants whose values lie in [0, 1] (the decoder means' range).
UNIT_VARIANTS = ("grayscale", "dequantized_8bit", "binarized_dynamic", "binarized_static",
                 "binarized_fixed")


class Encoder(nn.Module):
  """x: f32[B, H, W, C] -> z: f32[B, latent]."""
  arch: str
  hidden: tuple
  latent: int
  activation: str

  @nn.compact
  def __call__(self, x):
    act = layers.ACTIVATIONS[self.activation]
    if self.arch == "mlp":
      return layers.MLP(tuple(self.hidden) + (self.latent,), act)(x.reshape(x.shape[0], -1))
    return layers.ConvEncoder(tuple(self.hidden), self.latent, act)(x)


# --------------------------------------------------------------------------- latent mixture

@dataclasses.dataclass(frozen=True)
class LatentMixture:
  """A diagonal Gaussian mixture over codes f32[N, L], fitted by online EM (module doc).

  Mixture parameters are in `gen_jax.models.gmm`'s diagonal layout (logits
  f[K], means f[K, L], log_prec_diag f[K, L] = -log std), so its density is
  `gmm.gaussian_log_probs`.
  """
  components: int
  dim: int
  ema: float
  start_steps: int
  var_floor: float
  kmeans_iters: int

  def init_state(self, dtype=jnp.float32) -> dict:
    """Statistics of K copies of N(0, I): the mixture before fitting starts."""
    k, d = self.components, self.dim
    stats = {"n": jnp.full((k,), 1.0 / k, dtype), "s1": jnp.zeros((k, d), dtype),
             "s2": jnp.full((k, d), 1.0 / k, dtype)}
    return {"step": jnp.zeros((), jnp.int32), "stats": stats}

  def m_step(self, stats: dict) -> dict:
    """Closed-form mixture parameters from (averaged) statistics n, s1, s2."""
    n = stats["n"]
    tiny = 10 * jnp.finfo(n.dtype).tiny
    n_safe = jnp.maximum(n, tiny)
    pi = n_safe / jnp.sum(n_safe)
    means = stats["s1"] / n_safe[:, None]
    var = jnp.maximum(stats["s2"] / n_safe[:, None] - means * means, 0.0) + self.var_floor
    return {"logits": jnp.log(pi), "means": means, "log_prec_diag": -0.5 * jnp.log(var)}

  def joint(self, mix: dict, z) -> jax.Array:
    """log pi_k + log N(z_n; mu_k, diag var_k): f[N, K] (nats)."""
    return mix["logits"][None] + gmm.gaussian_log_probs(mix, z, "diag")

  def log_prob(self, state: dict, z) -> jax.Array:
    """log p(z) under the fitted mixture: f[N] (nats per code)."""
    return jax.nn.logsumexp(self.joint(self.m_step(state["stats"]), z), axis=-1)

  @staticmethod
  def suff_stats(resp, z) -> dict:
    """Batch averages of r_k, r_k z, r_k z^2 for responsibilities resp f[N, K]."""
    n = z.shape[0]
    return {"n": resp.mean(0), "s1": resp.T @ z / n, "s2": resp.T @ (z * z) / n}

  def update(self, state: dict, z, rng) -> dict:
    """One online-EM step on codes z f[N, L] (N >= K); returns the new state."""
    z = z.astype(state["stats"]["n"].dtype)
    t = state["step"] - self.start_steps            # steps since the fit started

    def wait(stats):
      return stats

    def seed(stats):
      del stats
      centers = gmm.kmeans(rng, z, jnp.ones(z.shape[:1], z.dtype), self.components,
                           self.kmeans_iters)
      labels = jnp.argmin(jnp.sum((z[:, None] - centers[None]) ** 2, -1), -1)
      return self.suff_stats(jax.nn.one_hot(labels, self.components, dtype=z.dtype), z)

    def em(stats):
      joint = self.joint(self.m_step(stats), z)
      resp = jnp.exp(joint - jax.nn.logsumexp(joint, axis=-1, keepdims=True))
      gamma = jnp.maximum(1.0 - self.ema, 1.0 / (t + 1.0)).astype(z.dtype)
      return jax.tree.map(lambda s, b: s + gamma * (b - s), stats, self.suff_stats(resp, z))

    branch = jnp.clip(t + 1, 0, 2)                  # 0: wait, 1: seed, 2: EM
    stats = jax.lax.switch(branch, (wait, seed, em), state["stats"])
    return {"step": state["step"] + 1, "stats": stats}

  def sample(self, state: dict, rng, n: int) -> jax.Array:
    """n codes f[n, L] from the mixture."""
    mix = self.m_step(state["stats"])
    r_k, r_z = jax.random.split(rng)
    comp = jax.random.categorical(r_k, mix["logits"], shape=(n,))
    eps = jax.random.normal(r_z, (n, self.dim), mix["means"].dtype)
    return mix["means"][comp] + eps * jnp.exp(-mix["log_prec_diag"][comp])


# --------------------------------------------------------------------------- the family

def _check(config: ml_collections.ConfigDict, shape: tuple) -> None:
  m = config.model
  for key, value, valid in (("arch", m.arch, ARCHS), ("loss", m.loss, LOSSES),
                            ("activation", m.activation, layers.ACTIVATIONS)):
    if value not in valid:
      raise errors.ConfigError(errors.choices(f"model.{key}", value, valid))
  if config.data.variant not in UNIT_VARIANTS:
    raise errors.ConfigError(
        f"the autoencoder reconstructs images in [0, 1]: data.variant must be one of "
        f"{', '.join(UNIT_VARIANTS)} (got {config.data.variant!r})")
  if m.latent < 1:
    raise errors.ConfigError(f"model.latent must be >= 1 (got {m.latent})")
  if m.arch == "conv" and not m.hidden:
    raise errors.ConfigError("arch 'conv' needs model.hidden to list each stage's channels")
  f = 2 ** len(m.hidden)
  if m.arch == "conv" and (shape[0] % f or shape[1] % f):
    raise errors.ConfigError(f"arch 'conv' with {len(m.hidden)} stages needs H and W "
                             f"divisible by {f} (got {shape[0]}x{shape[1]})")
  c = m.corruption
  corruptions.check(c.kind, c.level, (1,) + shape, c.level_max)
  k, batch = m.latent_components, config.data.batch_size
  if k < 1 or (batch and k > batch):
    raise errors.ConfigError(f"model.latent_components must be in [1, data.batch_size={batch}] "
                             f"(got {k}): k-means++ seeds them from one batch")
  if not 0.0 <= m.latent_ema < 1.0:
    raise errors.ConfigError(f"model.latent_ema must be in [0, 1) (got {m.latent_ema})")
  if m.latent_fit_start_steps < 0:
    raise errors.ConfigError(
        f"model.latent_fit_start_steps must be >= 0 (got {m.latent_fit_start_steps})")
  if not m.latent_var_floor > 0:
    raise errors.ConfigError(f"model.latent_var_floor must be > 0 (got {m.latent_var_floor})")


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """Builds the autoencoder family from `config.model` for the spec's image field."""
  field = spec_lib.of_field(spec, "image")
  if field is None:
    raise errors.ConfigError(f"the autoencoder needs an image field; the data has "
                             f"{spec_lib.describe(spec)}")
  shape = tuple(spec[field].shape)
  _check(config, shape)
  m, c = config.model, config.model.corruption
  num_pixels = math.prod(shape)
  encoder = Encoder(m.arch, tuple(m.hidden), m.latent, m.activation)
  decoder = vae.Decoder(m.arch, tuple(m.hidden), shape, m.activation, params_per_pixel=1)
  mixture = LatentMixture(int(m.latent_components), int(m.latent), float(m.latent_ema),
                          int(m.latent_fit_start_steps), float(m.latent_var_floor),
                          int(m.latent_kmeans_iters))

  def enc(p, x):
    return encoder.apply({"params": p["encoder"]}, x)

  def dec_logits(p, z):
    return decoder.apply({"params": p["decoder"]}, z)

  def per_pixel_mse(logits, x):
    """mean_d (sigmoid(logits) - x)^2: f32[B]."""
    err = jax.nn.sigmoid(logits) - x
    return jnp.mean(err.reshape(x.shape[0], -1) ** 2, axis=-1)

  def init(rng, batch):
    x = batch[field].astype(jnp.float32)
    r_enc, r_dec = jax.random.split(rng)
    params = {"encoder": encoder.init(r_enc, x)["params"],
              "decoder": decoder.init(r_dec, jnp.zeros((1, m.latent)))["params"]}
    return {"model": params}, mixture.init_state()

  def loss(player, params, state, batch, rng):
    del player
    p, x = params["model"], batch[field].astype(jnp.float32)
    r_noise, r_fit = jax.random.split(rng)
    z_in = enc(p, corruptions.corrupt(c.kind, x, r_noise, c.level, c.level_max))
    logits = dec_logits(p, z_in)
    bce = -dists.bernoulli_log_prob(logits, x)
    mse = per_pixel_mse(logits, x)
    objective = bce if m.loss == "bce" else mse
    z = jax.lax.stop_gradient(z_in if c.kind == "none" else enc(p, x))
    metrics = {"recon_bce": bce.mean(), "recon_mse": mse.mean(),
               "latent_nll": -mixture.log_prob(state, z).mean()}
    return objective.mean(), (mixture.update(state, z, r_fit), metrics)

  def eval_fn(params, state, batch, rng, corruption=None, level=None):
    """Per-example reconstruction errors and code densities (see eval_units).

    `corruption` / `level` score another corruption than the training one
    (e.g. a noise level the model was not trained on); by default the
    training corruption, with its per-example sigma range.
    """
    p, x = params["model"], batch[field].astype(jnp.float32)
    z = enc(p, x)
    logits = dec_logits(p, z)
    if corruption is None and level is None:
      x_c = corruptions.corrupt(c.kind, x, rng, c.level, c.level_max)
    else:
      x_c = corruptions.corrupt(c.kind if corruption is None else corruption, x, rng,
                                c.level if level is None else level)
    err_in = (x_c - x).reshape(x.shape[0], -1)
    return {"recon_mse": per_pixel_mse(logits, x),
            "recon_bce": -dists.bernoulli_log_prob(logits, x),
            "recon_mse_corrupted": per_pixel_mse(dec_logits(p, enc(p, x_c)), x),
            "corrupted_input_mse": jnp.mean(err_in * err_in, axis=-1),
            "latent_nll": -mixture.log_prob(state, z)}

  def encode(params, state, x):
    del state
    return enc(params["model"], x.astype(jnp.float32))

  def decode(params, state, z):
    del state
    return jax.nn.sigmoid(dec_logits(params["model"], z))

  def sample(params, state, rng, n):
    return decode(params, state, mixture.sample(state, rng, n))

  level = ("no corruption" if c.kind == "none" else
           f"{c.kind} {c.level}" + (f" to {c.level_max}" if c.level_max else ""))
  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      encode=encode, decode=decode, sample_field=field,
      eval_units={
          "recon_mse": f"mean squared error per pixel on [0, 1] ({num_pixels} pixels), "
                       f"clean input",
          "recon_bce": f"nats per image ({num_pixels} pixels), Bernoulli cross-entropy of "
                       f"the clean image's values under the decoder means, clean input",
          "recon_mse_corrupted": f"mean squared error per pixel on [0, 1] vs the clean image, "
                                 f"input corrupted by {level} (or the eval kwargs' corruption)",
          "corrupted_input_mse": f"mean squared error per pixel on [0, 1] of the corrupted "
                                 f"input itself ({level}, or the eval kwargs'): the "
                                 f"identity baseline",
          "latent_nll": f"nats per code ({m.latent} dims), -log density of encode(x) under "
                        f"the {m.latent_components}-component latent mixture",
      })
