"""Dataset variants: what the model sees, always named explicitly in the config.

`apply` runs inside the jitted step, on device, on the raw `u8` batch:
  grayscale          x / 255, f32 in [0, 1]
  binarized_dynamic  Bernoulli(x / 255), resampled every batch (Burda et al. 2015)
  binarized_static   the dataset's own fixed binarization (e.g. TFDS binarized_mnist)
  dequantized_8bit   (x + u) / 256, u ~ U[0, 1)^D; densities on [0, 1)^D in nats
                     convert to bits/dim on the 8-bit scale as
                     (nll + D ln 256) / (D ln 2)
  continuous         f32 data used as is (the toy 2-D densities)

Evaluation uses a fixed copy of the test split: a dynamically binarized test
set is binarized once on the host with a fixed seed (`eval_arrays`), so every
evaluation of every model sees the same bits.
"""
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors

VARIANTS = ("grayscale", "binarized_dynamic", "binarized_static", "dequantized_8bit",
            "continuous")
EVAL_BINARIZATION_SEED = 0


def check(variant: str, binary_source: bool, dataset: str,
          continuous_source: bool = False) -> None:
  """Rejects unknown variants and variants that do not fit the source."""
  if variant not in VARIANTS:
    raise errors.ConfigError(errors.choices("data variant", variant, VARIANTS))
  if continuous_source != (variant == "continuous"):
    raise errors.ConfigError(
        f"dataset {dataset!r} is continuous; its only variant is 'continuous'"
        if continuous_source else
        f"variant 'continuous' is for continuous datasets (the toy 2-D densities); "
        f"{dataset!r} holds 8-bit images")
  if variant == "binarized_static" and not binary_source:
    raise errors.ConfigError(
        f"variant 'binarized_static' needs a dataset that is already binary "
        f"(e.g. binarized_mnist); {dataset!r} is 8-bit: use 'binarized_dynamic'")
  if binary_source and variant != "binarized_static":
    raise errors.ConfigError(
        f"dataset {dataset!r} is already binary; its only variant is 'binarized_static'")


def apply(variant: str, x: jax.Array, rng: jax.Array) -> jax.Array:
  """u8[B, ...] -> f32[B, ...] as described in the module docstring."""
  if variant == "grayscale":
    return x.astype(jnp.float32) / 255.0
  if variant == "binarized_dynamic":
    return jax.random.bernoulli(rng, x.astype(jnp.float32) / 255.0).astype(jnp.float32)
  if variant == "binarized_static":
    return x.astype(jnp.float32)
  if variant == "dequantized_8bit":
    u = jax.random.uniform(rng, x.shape, jnp.float32)
    return (x.astype(jnp.float32) + u) / 256.0
  if variant == "continuous":
    return x.astype(jnp.float32)
  raise errors.ConfigError(errors.choices("data variant", variant, VARIANTS))


def eval_arrays(variant: str, x: np.ndarray) -> tuple[np.ndarray, str]:
  """Fixes the stochastic part of a test split once: returns (x, eval variant)."""
  if variant == "binarized_dynamic":
    rng = np.random.default_rng(EVAL_BINARIZATION_SEED)
    return (rng.random(x.shape) < x / 255.0).astype(np.uint8), "binarized_static"
  return x, variant
