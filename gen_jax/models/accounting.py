"""Likelihood accounting for densities of discrete data, done once, here.

A flow models a continuous density. For 8-bit images the data variant
"dequantized_8bit" (see `gen_jax.data.variants`) feeds it
x = (k + u) / 256 with k in {0..255}^D and u ~ U[0, 1)^D, so x lies in
[0, 1)^D. The chain of densities is

  pixels k (discrete) --(+u, /256)--> x in [0, 1)^D --(preprocess)--> y --(flow)--> z

and, per example, in nats:

  log p(x) = log p_flow(y) + log|det dy/dx|                (`preprocess` log_det)
  log P(k) >= E_u[log p(x)] - D log 256                    (Jensen; Theis et al. 2016)
  bits/dim on the 8-bit scale = (-log p(x) + D log 256) / (D log 2)   (`bits_per_dim`)

so a density that is uniform on [0, 1)^D (log p(x) = 0) scores exactly 8
bits/dim, and every published MNIST/CIFAR bits/dim (which use the same 8-bit
discrete scale) is comparable. The logit transform's Jacobian is part of
log p(x): a model trained in logit space is scored in pixel space.

Preprocessing (`kind`):
  "none"    y = x                      log_det = 0       (continuous data)
  "center"  y = x - 1/2                log_det = 0       (Glow)
  "logit"   y = logit(a + (1 - 2a) x)  log_det = sum_d log((1 - 2a) / (s_d (1 - s_d))),
            s = a + (1 - 2a) x; a = `alpha` keeps y finite at x = 0 (RealNVP:
            a = 0.05; MAF: 1e-6).
"""
import math

import jax
import jax.numpy as jnp

from gen_jax import errors

PREPROCESS = ("none", "center", "logit")
LEVELS_8BIT = 256


def _check(kind: str, alpha: float) -> None:
  if kind not in PREPROCESS:
    raise errors.ConfigError(errors.choices("model.preprocess", kind, PREPROCESS))
  if kind == "logit" and not 0.0 < alpha < 0.5:
    raise errors.ConfigError(f"model.logit_alpha must be in (0, 0.5) (got {alpha})")


def preprocess(x: jax.Array, kind: str, alpha: float = 0.05) -> tuple[jax.Array, jax.Array]:
  """x: f32[B, ...] -> (y: f32[B, ...], log|det dy/dx|: f32[B] in nats)."""
  _check(kind, alpha)
  zero = jnp.zeros(x.shape[:1], x.dtype)
  if kind == "none":
    return x, zero
  if kind == "center":
    return x - 0.5, zero
  s = alpha + (1.0 - 2.0 * alpha) * x
  y = jnp.log(s) - jnp.log1p(-s)
  ld = math.log(1.0 - 2.0 * alpha) - jnp.log(s) - jnp.log1p(-s)
  return y, ld.reshape(x.shape[0], -1).sum(-1)


def postprocess(y: jax.Array, kind: str, alpha: float = 0.05) -> jax.Array:
  """Inverse of `preprocess`: model space y -> data space x (f32, same shape)."""
  _check(kind, alpha)
  if kind == "none":
    return y
  if kind == "center":
    return y + 0.5
  return (jax.nn.sigmoid(y) - alpha) / (1.0 - 2.0 * alpha)


def bits_per_dim(nll: jax.Array, num_dims: int, levels: int = LEVELS_8BIT) -> jax.Array:
  """-log p(x) in nats for x on [0, 1)^D -> bits per dimension on the `levels`-level scale."""
  return (nll + num_dims * math.log(levels)) / (num_dims * math.log(2.0))
