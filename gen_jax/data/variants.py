"""Dataset variants: what the model sees, always named explicitly in the config.

`apply` runs inside the jitted step, on device, on the raw `u8` batch:
  grayscale          x / 255, f32 in [0, 1]
  binarized_dynamic  Bernoulli(x / 255), resampled every batch (Burda et al. 2015);
                     drawn by `bernoulli_u8` (16-bit hashed uniforms, within 2^-16 of x / 255)
  binarized_static   the dataset's own fixed binarization (e.g. TFDS binarized_mnist)
  binarized_fixed    Bernoulli(x / 255) drawn ONCE (Salakhutdinov & Murray 2008's
                     MNIST): image bits are a pure function of FIXED_BINARIZATION_SEED
                     and the image itself (`fixed_binarization`), the same at every
                     step, on every device and in evaluation
  dequantized_8bit   (x + u) / 256, u ~ U[0, 1)^D; densities on [0, 1)^D in nats
                     convert to bits/dim on the 8-bit scale as
                     (nll + D ln 256) / (D ln 2)
  continuous         f32 data used as is (the toy 2-D densities)
  tokens             integer ids used as is (text, sequence tasks)
  raw                values as stored (HMM sequences, Bayesian-network tables,
                     Ising lattices); integer image/point fields become f32

Image variants transform every field of modality "image" and leave the
others (labels, tokens, tables) as they are; `model_spec` gives the spec the
model sees.

Evaluation uses a fixed copy of the test split: a dynamically binarized test
set is binarized once on the host with a fixed seed (`eval_arrays`), so every
evaluation of every model sees the same bits.
"""
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors

VARIANTS = ("grayscale", "binarized_dynamic", "binarized_static", "binarized_fixed",
            "dequantized_8bit", "continuous", "tokens", "raw")
# Which variants fit which kind of source (sources.Split.kind).
_KIND_VARIANT = {"points": "continuous", "text": "tokens", "seq2seq": "tokens",
                 "sequence": "raw", "table": "raw", "lattice": "raw"}
EVAL_BINARIZATION_SEED = 0
FIXED_BINARIZATION_SEED = 2008   # binarized_fixed; a new seed is a new dataset


def check(variant: str, binary_source: bool, dataset: str, kind: str = "image") -> None:
  """Rejects unknown variants and variants that do not fit the source.

  `kind` is the source's `Split.kind`: "image", "points", "text", "seq2seq",
  "sequence" (HMM observations), "table" (discrete cases) or "lattice" (spin
  configurations); the last three take only the variant "raw" (as stored).
  """
  if variant not in VARIANTS:
    raise errors.ConfigError(errors.choices("data variant", variant, VARIANTS))
  only = _KIND_VARIANT.get(kind)
  if only is not None and variant != only:
    raise errors.ConfigError(f"dataset {dataset!r} holds {kind} data; its only variant is "
                             f"{only!r}")
  if only is None and variant in _KIND_VARIANT.values():
    holder = [k for k, v in _KIND_VARIANT.items() if v == variant]
    raise errors.ConfigError(
        f"variant {variant!r} is for {' or '.join(holder)} datasets; {dataset!r} holds "
        f"8-bit images")
  if variant == "binarized_static" and not binary_source:
    raise errors.ConfigError(
        f"variant 'binarized_static' needs a dataset that is already binary "
        f"(e.g. binarized_mnist); {dataset!r} is 8-bit: use 'binarized_dynamic'")
  if binary_source and variant != "binarized_static":
    raise errors.ConfigError(
        f"dataset {dataset!r} is already binary; its only variant is 'binarized_static'")


def apply_batch(variant: str, batch: dict, spec: dict, rng: jax.Array) -> dict:
  """The model-space batch: `apply` on every image field, other fields as they are.

  Fields are looked up in `spec` (gen_jax.data.spec); each image field gets
  its own key, so two image fields are noised independently.
  """
  out = dict(batch)
  names = sorted(k for k, f in spec.items() if k in out and f.modality in ("image", "points"))
  for i, name in enumerate(names):
    out[name] = apply(variant, out[name], jax.random.fold_in(rng, i) if i else rng)
  return out


def model_spec(variant: str, spec: dict) -> dict:
  """The spec of `apply_batch`'s output: image fields become float32."""
  del variant   # every image variant yields f32
  return {k: f.replace(dtype="float32") if f.modality in ("image", "points") else f
          for k, f in spec.items()}


def apply(variant: str, x: jax.Array, rng: jax.Array) -> jax.Array:
  """u8[B, ...] -> f32[B, ...] as described in the module docstring."""
  if variant == "grayscale":
    return x.astype(jnp.float32) / 255.0
  if variant == "binarized_dynamic":
    return bernoulli_u8(rng, x).astype(jnp.float32)
  if variant == "binarized_static":
    return x.astype(jnp.float32)
  if variant == "binarized_fixed":
    return fixed_binarization(x).astype(jnp.float32)
  if variant == "dequantized_8bit":
    u = jax.random.uniform(rng, x.shape, jnp.float32)
    return (x.astype(jnp.float32) + u) / 256.0
  if variant == "continuous":
    return x.astype(jnp.float32)
  if variant == "tokens":
    return x
  if variant == "raw":     # sequences, tables, lattices as stored; integer fields -> f32
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
  raise errors.ConfigError(errors.choices("data variant", variant, VARIANTS))


def _mix32(h):
  """murmur3's 32-bit finalizer: a bijection of uint32 that scrambles every bit."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def uniform_u16(rng: jax.Array, n: int) -> jax.Array:
  """u32[n] 16-bit uniforms (values in [0, 65536)) from one threefry call.

  Every 32-bit word gives two uniforms (its high and low halves). The words are
  a counter-based hash (murmur3's finalizer, twice) of the word's index and two
  threefry words drawn from `rng`: one threefry call per batch instead of one
  per word (a 128x784 binarization: 0.16 against 0.42 ms on a 2-core CPU, where
  threefry is the dearest part of a small model's step); the same key gives the
  same values on every backend.
  """
  seed = jax.random.bits(rng, (2,), jnp.uint32)
  c = jnp.arange((n + 1) // 2, dtype=jnp.uint32)
  words = _mix32(_mix32(c * jnp.uint32(0x9E3779B9) + seed[0]) ^ seed[1])
  return jnp.concatenate([words >> 16, words & jnp.uint32(0xFFFF)])[:n]


def bernoulli_u8(rng: jax.Array, x: jax.Array) -> jax.Array:
  """u8[...] pixels -> u8[...] in {0, 1}: pixel j is 1 with probability ~ x_j / 255.

  Each pixel compares a 16-bit uniform u_j (`uniform_u16`) with x_j exactly in
  integers, [255 u_j < 65536 x_j], so P(1) = ceil(65536 x / 255) / 65536:
  exactly 0 at x = 0, exactly 1 at x = 255 and within 2^-16 of x / 255 in
  between. Pixels j and j + ceil(n / 2) share a 32-bit word.
  """
  u = uniform_u16(rng, x.size).reshape(x.shape)
  return (u * jnp.uint32(255) < x.astype(jnp.uint32) << 16).astype(jnp.uint8)


def fixed_binarization(x, seed: int = FIXED_BINARIZATION_SEED) -> jax.Array:
  """u8[B, ...] -> u8[B, ...] in {0, 1}: pixel j is 1 with probability x_j / 255, drawn once.

  The uniform draw u_j of pixel j is a hash of (seed, a 64-bit hash of the whole
  image, j), in uint32 arithmetic only, so an image gets the same bits in every
  batch, process and backend; bit = [u_j < x_j / 255], compared exactly as
  integers (u has 24 bits). Two identical images share their bits.
  """
  flat = jnp.asarray(x).reshape(x.shape[0], -1).astype(jnp.uint32)
  j = jnp.arange(flat.shape[1], dtype=jnp.uint32)
  s = jnp.uint32(seed)
  token = (flat << 16) ^ j                       # injective in (value, position)
  h1 = _mix32(token ^ _mix32(s)).sum(1, dtype=jnp.uint32)
  h2 = _mix32(token ^ _mix32(s ^ jnp.uint32(0x9E3779B9))).sum(1, dtype=jnp.uint32)
  u = _mix32(_mix32(j[None] * jnp.uint32(0x9E3779B9) + h1[:, None] + s) ^ h2[:, None]) >> 8
  bits = u * jnp.uint32(255) < flat * jnp.uint32(1 << 24)
  return bits.astype(jnp.uint8).reshape(x.shape)


def eval_arrays(variant: str, x: np.ndarray) -> tuple[np.ndarray, str]:
  """Fixes the stochastic part of a test split once: returns (x, eval variant)."""
  if variant == "binarized_dynamic":
    rng = np.random.default_rng(EVAL_BINARIZATION_SEED)
    return (rng.random(x.shape) < x / 255.0).astype(np.uint8), "binarized_static"
  return x, variant


def eval_batch_arrays(variant: str, arrays: dict, spec: dict) -> tuple[dict, str]:
  """`eval_arrays` on every image field of a split's arrays: (arrays, eval variant)."""
  out, eval_variant = dict(arrays), variant
  for name, field in spec.items():
    if field.modality == "image" and name in out:
      out[name], eval_variant = eval_arrays(variant, out[name])
  return out, eval_variant
