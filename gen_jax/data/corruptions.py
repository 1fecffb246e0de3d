"""Image corruptions: the noise a denoising autoencoder trains on, the inputs the
restoration evaluators score, and the input perturbation of a likelihood-ratio
background model. Pure functions of (x, rng); images f32[B, H, W, C] in [0, 1].

Kinds (`level` is the kind's one parameter):
  gaussian     x + level * N(0, 1), clipped to [0, 1] (level = sigma on the
               [0, 1] scale; 0.1 to 0.5 in the denoising benchmark); with
               level_max > level, one sigma per example drawn uniformly from
               [level, level_max], so one model learns a range of levels.
  masking      each value set to 0 with probability `level` (Vincent et al.
               2010, "masking noise").
  salt_pepper  each value set to 0 or 1 (even odds) with probability `level`.
  downsample   area-average level x level blocks, then bicubic upsampling back
               to H x W, clipped: the low-resolution image at full size, which
               is the bicubic baseline of super-resolution (level = 2 or 4).
  mutate       each value replaced, with probability `level`, by a uniform
               random 8-bit value / 255 (the background-model perturbation of
               Ren et al. 2019, mutation rate 0.1 to 0.3).
  none         x unchanged.
"""
import jax
import jax.numpy as jnp

from gen_jax import errors

KINDS = ("none", "gaussian", "masking", "salt_pepper", "downsample", "mutate")


def check(kind: str, level: float, shape: tuple = (), level_max: float = 0.0) -> None:
  """One-line errors for an unknown kind or a level (or sigma range) it cannot take."""
  if kind not in KINDS:
    raise errors.ConfigError(errors.choices("corruption", kind, KINDS))
  if level_max and not (kind == "gaussian" and level_max > level):
    raise errors.ConfigError(
        f"corruption level_max={level_max} draws sigma in [level, level_max]: it needs kind "
        f"'gaussian' and level_max > level (got kind {kind!r}, level {level}); 0 = a fixed "
        f"level")
  if kind == "downsample":
    k = int(level)
    if k != level or k < 1:
      raise errors.ConfigError(
          f"corruption 'downsample' needs an integer factor >= 1 (got {level})")
    if len(shape) >= 3 and (shape[-3] % k or shape[-2] % k):
      raise errors.ConfigError(
          f"corruption 'downsample' by {k} needs H and W divisible by {k} "
          f"(got {shape[-3]}x{shape[-2]})")
  elif kind in ("masking", "salt_pepper", "mutate") and not 0.0 <= level <= 1.0:
    raise errors.ConfigError(f"corruption {kind!r} needs a probability in [0, 1] (got {level})")
  elif kind == "gaussian" and level < 0:
    raise errors.ConfigError(f"corruption 'gaussian' needs sigma >= 0 (got {level})")


def downsample(x: jax.Array, k: int) -> jax.Array:
  """Area downsampling: f32[B, H, W, C] -> f32[B, H/k, W/k, C] (means of k x k blocks)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // k, k, w // k, k, c).mean(axis=(2, 4))


def upsample_bicubic(x: jax.Array, h: int, w: int) -> jax.Array:
  """Bicubic resize f32[B, h0, w0, C] -> f32[B, h, w, C] (jax.image.resize, Keys a = -0.5)."""
  return jax.image.resize(x, (x.shape[0], h, w, x.shape[-1]), method="bicubic")


def corrupt(kind: str, x: jax.Array, rng: jax.Array, level: float,
            level_max: float = 0.0) -> jax.Array:
  """Corrupted images f32[B, H, W, C] in [0, 1]; see the module docstring for the kinds.

  `level_max` (gaussian only; 0 = a fixed level) draws each example's sigma from
  [level, level_max].
  """
  check(kind, level, x.shape, level_max)
  x = x.astype(jnp.float32)
  if kind == "none":
    return x
  if kind == "gaussian":
    if not level_max:
      return jnp.clip(x + level * jax.random.normal(rng, x.shape), 0.0, 1.0)
    r_sigma, r_noise = jax.random.split(rng)
    sigma = jax.random.uniform(r_sigma, (x.shape[0],) + (1,) * (x.ndim - 1),
                               minval=level, maxval=level_max)
    return jnp.clip(x + sigma * jax.random.normal(r_noise, x.shape), 0.0, 1.0)
  if kind == "masking":
    return jnp.where(jax.random.bernoulli(rng, level, x.shape), 0.0, x)
  if kind == "salt_pepper":
    r_hit, r_val = jax.random.split(rng)
    value = jax.random.bernoulli(r_val, 0.5, x.shape).astype(x.dtype)
    return jnp.where(jax.random.bernoulli(r_hit, level, x.shape), value, x)
  if kind == "downsample":
    k = int(level)
    if k == 1:
      return x
    return jnp.clip(upsample_bicubic(downsample(x, k), x.shape[1], x.shape[2]), 0.0, 1.0)
  r_hit, r_val = jax.random.split(rng)                       # mutate
  value = jax.random.randint(r_val, x.shape, 0, 256).astype(x.dtype) / 255.0
  return jnp.where(jax.random.bernoulli(r_hit, level, x.shape), value, x)
