"""Log-densities used by several families. All values are in nats.

Per-example functions sum over every non-batch axis: `x: f32[B, ...] -> f32[B]`.
"""
import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


def _sum_event(v: jax.Array) -> jax.Array:
  return v.reshape(v.shape[0], -1).sum(-1) if v.ndim > 1 else v


def bernoulli_log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
  """log Bernoulli(x | sigmoid(logits)), x in {0, 1}: f32[B, ...] -> f32[B]."""
  # x*log s(l) + (1-x)*log(1-s(l)) = x*l - softplus(l), stable for any logit.
  return _sum_event(x * logits - jax.nn.softplus(logits))


def normal_log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """log N(x | mean, diag(exp(log_std)^2)) summed over the last axis: f32[..., D] -> f32[...]."""
  z = (x - mean) * jnp.exp(-log_std)
  return jnp.sum(-0.5 * z * z - log_std - 0.5 * LOG_2PI, axis=-1)


def std_normal_log_prob(x: jax.Array) -> jax.Array:
  """log N(x | 0, I) summed over the last axis."""
  return jnp.sum(-0.5 * x * x - 0.5 * LOG_2PI, axis=-1)


def kl_normal_std_normal(mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """KL(N(mean, diag(exp(2 log_std))) || N(0, I)) over the last axis, closed form."""
  return 0.5 * jnp.sum(mean * mean + jnp.exp(2.0 * log_std) - 1.0 - 2.0 * log_std, axis=-1)


def discretized_logistic_log_prob(x: jax.Array, mean: jax.Array, log_scale: jax.Array,
                                  num_bins: int = 256) -> jax.Array:
  """log P(x) for x on the grid {0, 1/(K-1), ..., 1}, K = num_bins: f32[B, ...] -> f32[B].

  Each pixel has the mass a Logistic(mean, exp(log_scale)) puts on its bin of
  width 1/(K-1); the two edge bins take the tails, so the K masses sum to 1
  (a proper discrete distribution, as in PixelCNN++).
  """
  half = 0.5 / (num_bins - 1)
  inv_s = jnp.exp(-log_scale)
  upper = (x - mean + half) * inv_s
  lower = (x - mean - half) * inv_s
  log_cdf_upper = jax.nn.log_sigmoid(upper)
  log_one_minus_cdf_lower = jax.nn.log_sigmoid(-lower)
  # sigmoid(u) - sigmoid(l) = (e^u - e^l) / ((1 + e^u)(1 + e^l)), so its log is
  # u + log(1 - e^(l-u)) - softplus(u) - softplus(l): no cancellation in the tails.
  mid = (upper + jnp.log(-jnp.expm1(lower - upper))
         - jax.nn.softplus(upper) - jax.nn.softplus(lower))
  logp = jnp.where(x < half, log_cdf_upper,
                   jnp.where(x > 1.0 - half, log_one_minus_cdf_lower, mid))
  return _sum_event(logp)
