"""Restoration by an encoder-decoder: denoising and super-resolution, in PSNR and SSIM.

type "restoration", for a family with encode and decode (autoencoders, VAEs).
Config keys (`config.evals.<name>`):
  kind: a corruption of gen_jax.data.corruptions: gaussian, masking,
    salt_pepper, mutate (denoising) or downsample (super-resolution)
  levels: the kind's levels, e.g. (0.1, 0.2, 0.3, 0.4, 0.5) (gaussian sigma
    on the [0, 1] scale) or (2, 4) (downsampling factors)
  split: "" = data.eval_split; num_examples: images (0 = the whole split)
  batch_size: model and metric batch; grid_images: images per level in the
    picture (default 8)
The clean images are the split in model space (the data variant applied once,
e.g. x / 255 for "grayscale"). Each level's corruption is drawn from a key
fixed by the run seed, the evaluator's name, the kind and the level, so every
checkpoint of a run is scored on the same corrupted images.

Results per level, `<name>/<kind>_<level>/<method>_psnr` (dB) and
`<method>_ssim`, each with a `_sem` companion (standard error over images),
for the methods
  model   decode(encode(corrupted))
  input   the corrupted image itself; for downsample the bicubic upsampling of
          the area-downsampled image (what `corrupt` returns): the bicubic
          baseline of super-resolution
  median  a 3x3 median filter of the corrupted image (denoising kinds only)
and `<name>/png`: a picture with, per level, rows clean / corrupted / median /
model. No canonical MNIST or Fashion-MNIST number exists for these tasks: the
protocol is the comparison, model against the input and the median filter
(sigma 0.1-0.5) or against bicubic upsampling (x2, x4), on the same images.
"""
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors, parallel
from gen_jax.data import corruptions, variants
from gen_jax.metrics import image_quality as iq
from gen_jax.utils import images

DENOISING = ("gaussian", "masking", "salt_pepper", "mutate")
KINDS = DENOISING + ("downsample",)
SSIM_HOW = "SSIM (7x7 uniform window, K1 0.01, K2 0.03, sample covariance; as scikit-image)"
_median3 = jax.jit(iq.median_filter)      # the 3x3 denoising baseline


def check(name: str, ec, config) -> None:
  """Fails before training on a kind, level or batch size this evaluator cannot use."""
  del config
  kind = ec.get("kind", "")
  if kind not in KINDS:
    raise errors.ConfigError(errors.choices(f"evals.{name}.kind", kind, KINDS))
  levels = tuple(ec.get("levels", ()))
  if not levels:
    raise errors.ConfigError(f"evals.{name}.levels must list at least one {kind} level")
  for level in levels:
    try:
      corruptions.check(kind, level)
    except errors.ConfigError as e:
      raise errors.ConfigError(f"evals.{name}.levels: {e}") from e
  batch = ec.get("batch_size")
  if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
    raise errors.ConfigError(f"evals.{name}.batch_size must be an integer >= 1 (got {batch!r})")


def require_autoencoder(family, who: str) -> None:
  """One-line ConfigError naming what a family without encode/decode lacks."""
  missing = [f"Family.{w}" for w in ("encode", "decode") if getattr(family, w) is None]
  if missing:
    raise errors.ConfigError(
        f"evaluator {who!r} needs an encoder and a decoder; this family has no "
        f"{' and no '.join(missing)}")


def clean_images(ctx, name: str, ec) -> tuple[np.ndarray, str]:
  """f32[N, H, W, C] images of the split in model space, and where they came from."""
  split = ctx.split(ec.get("split", ""))
  field = ctx.family.sample_field
  spec = variants.model_spec(split.variant, split.spec)
  if field not in spec or spec[field].modality != "image" or len(spec[field].shape) != 3:
    got = spec[field].modality if field in spec else "absent"
    raise errors.ConfigError(
        f"evaluator 'restoration' needs [H, W, C] images; field {field!r} of {split.where} "
        f"is {got}")
  n = ec.get("num_examples", 0) or len(split)
  raw = {k: jnp.asarray(v[:n]) for k, v in split.arrays.items()}
  x = variants.apply_batch(split.variant, raw, split.spec, ctx.key(name, "data"))[field]
  return np.asarray(x, np.float32), split.where


def map_batches(fn, batch: int, *arrays: np.ndarray) -> np.ndarray:
  """fn over leading-axis batches of `arrays` (the last one padded, so fn compiles once)."""
  n = len(arrays[0])
  out = []
  for i in range(0, n, batch):
    part = [a[i:i + batch] for a in arrays]
    m = len(part[0])
    if m < batch:
      part = [np.concatenate([p, np.repeat(p[-1:], batch - m, axis=0)]) for p in part]
    out.append(np.asarray(parallel.to_host(fn(*part)))[:m])
  return np.concatenate(out)


def describe(kind: str, level: float) -> str:
  """The corruption in words, for result units."""
  if kind == "downsample":
    return f"{int(level)}x{int(level)} area downsampling, bicubic upsampling back"
  if kind == "gaussian":
    return f"gaussian noise sigma {level:g} on the [0, 1] scale, clipped"
  return f"{kind} with probability {level:g}"


def mean_sem(values: np.ndarray) -> tuple[float, float]:
  """(mean, standard error) of per-image values: std (ddof 0) / sqrt(N), as the likelihood
  evaluator's."""
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std() / np.sqrt(len(v)))


def restore(ctx, kind: str, level: float, x: np.ndarray, rng: jax.Array, batch: int) -> dict:
  """{method: f32[N, H, W, C]} restorations of corrupt(kind, x, rng, level)."""
  corrupted = np.asarray(corruptions.corrupt(kind, jnp.asarray(x), rng, level))
  out = {"input": corrupted}
  if kind in DENOISING:
    out["median"] = map_batches(_median3, batch, corrupted)
  out["model"] = map_batches(lambda c: ctx.reconstruct_fn(ctx.params, ctx.state, c), batch,
                             corrupted)
  return out


def evaluate(ctx, name: str, ec) -> dict:
  check(name, ec, ctx.config)
  require_autoencoder(ctx.family, "restoration")
  kind, batch = ec.kind, ec.batch_size
  x, where = clean_images(ctx, name, ec)
  n, show = len(x), min(ec.get("grid_images", 8), len(x))
  psnr_fn, ssim_fn = jax.jit(iq.psnr), jax.jit(iq.ssim)
  results, tiles, labels = {}, [], []
  for level in ec.levels:
    tag = f"{kind}_{level:g}"
    outs = restore(ctx, kind, level, x, ctx.key(name, kind, f"{level:g}"), batch)
    how = {"model": "decode(encode(corrupted))",
           "input": ("bicubic upsampling (the corrupted input)" if kind == "downsample"
                     else "the corrupted input itself"),
           "median": "3x3 median filter of the corrupted input (reflected border)"}
    for method, y in outs.items():
      for metric, fn, unit in (("psnr", psnr_fn, "dB"), ("ssim", ssim_fn, SSIM_HOW)):
        mean, sem = mean_sem(map_batches(fn, batch, x, y))
        key = f"{name}/{tag}/{method}_{metric}"
        results[key] = (mean, f"{unit}, mean over {n} images of {where}; {how[method]}; "
                              f"{describe(kind, level)}")
        results[f"{key}_sem"] = (sem, f"standard error of the mean over {n} images")
    rows = [("clean", x)] + [(f"{kind} {level:g}" if m == "input" else m, outs[m])
                             for m in ("input", "median", "model") if m in outs]
    for label, imgs in rows:
      labels.append(label)
      tiles.append([_u8(img) for img in imgs[:show]])
  path = ctx.path(name, "png")
  if parallel.is_main():
    panel = images.labelled_panel(tiles, labels, [str(i) for i in range(show)],
                                  title=f"{name}, step {ctx.step}: {kind} restoration",
                                  tile=64)
    images.save_image(path, panel)
  shown = " / ".join(["clean", "corrupted"] + (["median"] if kind in DENOISING else []) +
                     ["model"])
  results[f"{name}/png"] = (path, f"restoration grid: per level, rows {shown}")
  return results


def _u8(img: np.ndarray) -> np.ndarray:
  """f32[H, W, C] in [0, 1] -> u8[H, W] (C = 1) or u8[H, W, C]."""
  out = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
  return out[..., 0] if out.shape[-1] == 1 else out
