"""Variational autoencoders: ELBO, IWAE(k) and beta-VAE objectives; MLP or conv nets.

Model: p(z) = N(0, I), q(z|x) = N(mu(x), diag sigma(x)^2), and a decoder
p(x|z) that is Bernoulli (binary data), a discretized logistic over 256 levels
(8-bit grayscale) or a Gaussian with a learned per-pixel scale (continuous,
e.g. dequantized data). All log-probabilities are in nats per example. With
`hidden=()` and the Gaussian likelihood, the model is linear-Gaussian
(probabilistic PCA), whose marginal is known in closed form; the tests use it
to check the estimators.

Objectives (config.model.objective), each to be maximized, per example:
  elbo:  E_q[log p(x|z)] - KL(q || p), one sample, KL in closed form
  beta:  E_q[log p(x|z)] - beta * KL(q || p)          (Higgins et al. 2017)
  iwae:  E[log (1/k) sum_i w_i], w_i = p(x, z_i) / q(z_i|x), z_i ~ q
         (Burda et al. 2015); k=1 is the ELBO with a sampled KL.

Evaluation (`eval_fn`) uses k importance samples per example (Burda: k=5000)
and returns, per example, `nll_iwae`: -log p^(x), the IWAE estimate (an upper
bound on -log p(x) in expectation, tight as k grows) and `neg_elbo`: -ELBO
estimated from the same samples.

Class conditioning (config.model.num_classes = K > 0, needs data.labels =
True; 0, the default, is the unconditional model): the one-hot label y is
concatenated to the encoder input (to the flattened image for the MLP, as K
constant channels for the conv net) and to the decoder input z, giving
q(z|x, y) and p(x|z, y) (the M2 conditioning of Kingma et al. 2014, the CVAE
of Sohn et al. 2015). The training loss is then -ELBO of log p(x|y).
`eval_fn` reports the class marginal under a uniform prior, `nll_iwae` =
-log (1/K) sum_y p^(x|y) (one IWAE estimate per class, same samples), and
`neg_elbo` = -(1/K) sum_y ELBO(x, y), an upper bound on -log p(x) by Jensen;
a batch with labels also gets `nll_iwae_given_y` and `neg_elbo_given_y`.
`sample(..., labels=None)` draws x ~ p(x|z, y) for labels i32[n] (default
0, 1, ..., K-1 repeated). The label-free `encode`/`decode` of the family
contract are not offered by a conditional model (its maps need y).

The MLP follows Burda et al.: x -> 200 -> 200 -> z(50) with tanh, mirrored in
the decoder.
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types
from gen_jax.nn import dists, layers

OBJECTIVES = ("elbo", "beta", "iwae")
LIKELIHOODS = ("bernoulli", "logistic", "gaussian")
ARCHS = ("mlp", "conv")


class Encoder(nn.Module):
  """x: f32[B, H, W, C], y: f32[B, K] one-hot or None -> (mu, log_std): f32[B, latent_dim] each."""
  arch: str
  hidden: tuple
  latent_dim: int
  activation: str

  @nn.compact
  def __call__(self, x, y=None):
    act = layers.ACTIVATIONS[self.activation]
    if self.arch == "mlp":
      h = x.reshape(x.shape[0], -1)
      if y is not None:
        h = jnp.concatenate([h, y], axis=-1)
      h = layers.MLP(tuple(self.hidden) + (2 * self.latent_dim,), act)(h)
    else:
      if y is not None:   # the label as K constant channels
        y_map = jnp.broadcast_to(y[:, None, None, :], x.shape[:3] + y.shape[-1:])
        x = jnp.concatenate([x, y_map], axis=-1)
      h = layers.ConvEncoder(self.hidden, 2 * self.latent_dim, act)(x)
    mu, log_std = jnp.split(h, 2, axis=-1)
    return mu, log_std


class Decoder(nn.Module):
  """z: f32[N, latent_dim], y: f32[N, K] one-hot or None -> parameters f32[N, H, W, C*m].

  m = 1 (Bernoulli logits) or 2 (mean, log-scale). With `free_scale`, the
  log-scale is a free per-pixel parameter `log_sigma` (Gaussian decoder).
  """
  arch: str
  hidden: tuple
  image_shape: tuple
  activation: str
  params_per_pixel: int
  free_scale: bool = False

  @nn.compact
  def __call__(self, z, y=None):
    act = layers.ACTIVATIONS[self.activation]
    h, w, c = self.image_shape
    if y is not None:
      z = jnp.concatenate([z, y], axis=-1)
    c_out = c * (1 if self.free_scale else self.params_per_pixel)
    if self.arch == "mlp":
      out = layers.MLP(tuple(reversed(self.hidden)) + (h * w * c_out,), act)(z)
      out = out.reshape(z.shape[0], h, w, c_out)
    else:
      out = layers.ConvDecoder(tuple(reversed(self.hidden)), (h, w, c_out), act)(z)
    if self.free_scale:
      log_sigma = self.param("log_sigma", nn.initializers.zeros, (h, w, c))
      out = jnp.concatenate([out, jnp.broadcast_to(log_sigma, out.shape)], axis=-1)
    return out


def _check(m: ml_collections.ConfigDict, variant: str, labels: bool) -> None:
  for key, value, valid in (("objective", m.objective, OBJECTIVES),
                            ("likelihood", m.likelihood, LIKELIHOODS),
                            ("arch", m.arch, ARCHS),
                            ("activation", m.activation, layers.ACTIVATIONS)):
    if value not in valid:
      raise errors.ConfigError(errors.choices(f"model.{key}", value, valid))
  binary = variant.startswith("binarized")
  if m.likelihood == "bernoulli" and not binary:
    raise errors.ConfigError(
        f"likelihood 'bernoulli' needs binary data; data.variant is {variant!r} "
        f"(use binarized_dynamic/binarized_static, or likelihood 'logistic')")
  if m.likelihood == "logistic" and variant != "grayscale":
    raise errors.ConfigError(
        f"likelihood 'logistic' models 8-bit levels and needs data.variant 'grayscale' "
        f"(got {variant!r})")
  if m.likelihood == "gaussian" and variant != "dequantized_8bit":
    raise errors.ConfigError(
        f"likelihood 'gaussian' is a density and needs data.variant 'dequantized_8bit' "
        f"(got {variant!r})")
  if m.k < 1:
    raise errors.ConfigError(f"model.k must be >= 1 (got {m.k})")
  ncls = m.get("num_classes", 0)
  if ncls < 0 or (ncls and not labels):
    raise errors.ConfigError(f"model.num_classes={ncls} needs data.labels = True (and >= 0)")


def _check_eval_kwargs(config: ml_collections.ConfigDict) -> None:
  """The likelihood evaluators' k and chunk (see eval_fn), checked before training."""
  for name, ec in config.evals.items():
    if ec.get("type") != "likelihood":
      continue
    kwargs = ec.get("kwargs", {})
    k, chunk = kwargs.get("k", 5000), kwargs.get("chunk", 500)
    if not (isinstance(k, int) and isinstance(chunk, int) and k >= 1 and chunk >= 1):
      raise errors.ConfigError(
          f"evals.{name}.kwargs: k and chunk must be integers >= 1 (got k={k!r}, "
          f"chunk={chunk!r})")
    if k % chunk:
      fit = max(d for d in range(1, min(chunk, k) + 1) if k % d == 0)
      raise errors.ConfigError(
          f"evals.{name}.kwargs: k={k} must be a multiple of chunk={chunk}; set "
          f"--config.evals.{name}.kwargs.chunk={fit} (or another divisor of k)")


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """Builds the VAE family from `config.model` for examples of shape (H, W, C)."""
  x_shape = tuple(spec["x"].shape)   # the image (H, W, C) or point (D,) field
  m = config.model
  _check(m, config.data.variant, bool(config.data.get("labels", False)))
  _check_eval_kwargs(config)
  ncls = int(m.get("num_classes", 0))
  if m.arch == "conv" and (x_shape[0] % 4 or x_shape[1] % 4):
    raise errors.ConfigError(f"arch 'conv' needs H and W divisible by 4 (got {x_shape})")
  ppp = 1 if m.likelihood == "bernoulli" else 2
  encoder = Encoder(m.arch, tuple(m.hidden), m.latent_dim, m.activation)
  decoder = Decoder(m.arch, tuple(m.hidden), tuple(x_shape), m.activation, ppp,
                    free_scale=m.likelihood == "gaussian")

  def log_lik(out, x):
    """log p(x|z): out f32[N, H, W, C*ppp], x f32[N, H, W, C] -> f32[N]."""
    if m.likelihood == "bernoulli":
      return dists.bernoulli_log_prob(out, x)
    mean, log_scale = jnp.split(out, 2, axis=-1)
    if m.likelihood == "gaussian":
      return dists.normal_log_prob(x.reshape(x.shape[0], -1), mean.reshape(x.shape[0], -1),
                                   log_scale.reshape(x.shape[0], -1))
    return dists.discretized_logistic_log_prob(
        x, jax.nn.sigmoid(mean), jnp.maximum(log_scale, -7.0))

  def mean_image(out):
    if m.likelihood == "bernoulli":
      return jax.nn.sigmoid(out)
    mean = jnp.split(out, 2, axis=-1)[0]
    return mean if m.likelihood == "gaussian" else jax.nn.sigmoid(mean)

  def one_hot(labels, dtype):
    """Labels i32[N] -> f32[N, K], or None for the unconditional model."""
    return jax.nn.one_hot(labels, ncls, dtype=dtype) if ncls else None

  def labels_of(batch, dtype):
    return one_hot(batch["y"].astype(jnp.int32), dtype) if ncls else None

  def init(rng, batch):
    x = batch["x"]
    r_enc, r_dec = jax.random.split(rng)
    y = one_hot(jnp.zeros(x.shape[:1], jnp.int32), x.dtype)
    enc = encoder.init(r_enc, x, y)["params"]
    z = jnp.zeros((1, m.latent_dim))
    dec = decoder.init(r_dec, z, one_hot(jnp.zeros((1,), jnp.int32), z.dtype))["params"]
    return {"model": {"encoder": enc, "decoder": dec}}, {}

  def log_weights(p, x, y, rng, k):
    """log w_i = log p(x, z_i | y) - log q(z_i|x, y), z_i ~ q: f32[k, B] (y: f32[B, K] or None)."""
    mu, log_std = encoder.apply({"params": p["encoder"]}, x, y)
    eps = jax.random.normal(rng, (k,) + mu.shape)
    z = mu + jnp.exp(log_std) * eps                                 # [k, B, D]
    yk = None if y is None else jnp.broadcast_to(y, (k,) + y.shape).reshape(-1, ncls)
    out = decoder.apply({"params": p["decoder"]}, z.reshape(-1, m.latent_dim), yk)
    xk = jnp.broadcast_to(x, (k,) + x.shape).reshape((-1,) + x.shape[1:])
    lpx = log_lik(out, xk).reshape(k, -1)
    lpz = dists.std_normal_log_prob(z)
    lqz = dists.normal_log_prob(z, mu, log_std)
    return lpx + lpz - lqz

  def loss(player, params, state, batch, rng):
    del player
    p, x = params["model"], batch["x"]
    y = labels_of(batch, x.dtype)
    if m.objective == "iwae":
      lw = log_weights(p, x, y, rng, m.k)
      bound = jax.nn.logsumexp(lw, axis=0) - math.log(m.k)
      metrics = {"iwae_bound": bound.mean(), "elbo": lw.mean()}
      return -bound.mean(), (state, metrics)
    mu, log_std = encoder.apply({"params": p["encoder"]}, x, y)
    z = mu + jnp.exp(log_std) * jax.random.normal(rng, mu.shape)
    recon = log_lik(decoder.apply({"params": p["decoder"]}, z, y), x)
    kl = dists.kl_normal_std_normal(mu, log_std)
    beta = m.beta if m.objective == "beta" else 1.0
    metrics = {"elbo": (recon - kl).mean(), "recon_nll": -recon.mean(), "kl": kl.mean()}
    return -(recon - beta * kl).mean(), (state, metrics)

  def eval_fn(params, state, batch, rng, k=5000, chunk=500):
    """Per-example `nll_iwae` and `neg_elbo` (nats) from k importance samples.

    Samples are drawn `chunk` at a time and combined with a running
    log-sum-exp, so memory is O(chunk * B * D) for any k. A conditional model
    repeats this for each class with the same samples (see the module docstring).
    """
    del state
    if k % chunk:
      raise errors.ConfigError(f"eval k={k} must be a multiple of chunk={chunk}")
    p, x = params["model"], batch["x"]

    def estimates(y):
      """(log p^(x|y), ELBO estimate): f32[B] each, from k samples."""
      def body(carry, r):
        lse, total = carry
        lw = log_weights(p, x, y, r, chunk)
        return (jnp.logaddexp(lse, jax.nn.logsumexp(lw, axis=0)), total + lw.sum(0)), None

      init_carry = (jnp.full(x.shape[:1], -jnp.inf), jnp.zeros(x.shape[:1]))
      (lse, total), _ = jax.lax.scan(body, init_carry, jax.random.split(rng, k // chunk))
      return lse - math.log(k), total / k

    if not ncls:
      ll, elbo = estimates(None)
      return {"nll_iwae": -ll, "neg_elbo": -elbo}
    ll, elbo = jax.lax.map(                                         # [K, B] each
        lambda c: estimates(one_hot(jnp.full(x.shape[:1], c), x.dtype)), jnp.arange(ncls))
    out = {"nll_iwae": -(jax.nn.logsumexp(ll, axis=0) - math.log(ncls)),
           "neg_elbo": -elbo.mean(0)}
    if "y" in batch:
      y = batch["y"].astype(jnp.int32)[None]
      out["nll_iwae_given_y"] = -jnp.take_along_axis(ll, y, 0)[0]
      out["neg_elbo_given_y"] = -jnp.take_along_axis(elbo, y, 0)[0]
    return out

  def sample(params, state, rng, n, labels=None):
    """f32[n, H, W, C]: decoder means of z ~ N(0, I) (given labels i32[n] if conditional)."""
    del state
    if labels is not None and not ncls:
      raise errors.ConfigError("sampling given labels needs a class-conditional VAE: set "
                               "model.num_classes and data.labels = True")
    z = jax.random.normal(rng, (n, m.latent_dim))
    y = None
    if ncls:
      y = one_hot((jnp.arange(n) % ncls if labels is None else jnp.asarray(labels)).astype(
          jnp.int32), z.dtype)
    return mean_image(decoder.apply({"params": params["model"]["decoder"]}, z, y))

  def encode(params, state, x):
    del state
    return encoder.apply({"params": params["model"]["encoder"]}, x)[0]

  def decode(params, state, z):
    del state
    out = decoder.apply({"params": params["model"]["decoder"]}, z)
    return mean_image(out)

  units = {"nll_iwae": "nats, -log p^(x): IWAE importance-sampling estimate",
           "neg_elbo": "nats, -ELBO: upper bound on -log p(x)"}
  if ncls:
    units = {
        "nll_iwae": f"nats, -log (1/{ncls}) sum_y p^(x|y): IWAE estimates, marginal over "
                    f"classes, uniform prior",
        "neg_elbo": f"nats, -(1/{ncls}) sum_y ELBO(x, y): upper bound on -log p(x), uniform "
                    f"class prior",
        "nll_iwae_given_y": "nats, -log p^(x|y): IWAE importance-sampling estimate",
        "neg_elbo_given_y": "nats, -ELBO(x, y): upper bound on -log p(x|y)",
    }
  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      encode=None if ncls else encode, decode=None if ncls else decode, eval_units=units)
