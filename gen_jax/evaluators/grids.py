"""Image evaluators: sample grids, reconstructions, latent interpolation.

`interpolation` (keys num: pairs, steps: frames per path) encodes pairs of
test images, decodes `steps` points on the line between their posterior means
and saves one row per pair to `<workdir>/samples/<name>_<step>.png`. It also
checks the path as numbers (pixel values on the [0, 1] scale, L2 norms over
the H*W*C values of one image):
  endpoint_error   max over the 2 * num endpoints of the RMS difference between
                   the path's end frame and decode(encode(x)) of that endpoint
                   image: 0 up to rounding, since the path starts at the code
  max_step_norm    max over paths of the L2 norm between consecutive frames
  max_step_ratio   max over paths of (largest step) / (||end - start|| /
                   (steps - 1)): 1 when a path moves evenly, large at a jump
With `classifier_workdir` / `classifier_config` (a classifier restored as
gen_jax.evaluators.feature_space restores it; `train_missing` trains a
missing one first), every frame is classified: `labels` (text, one path per
"|"-separated group), `label_changes` (mean per path; a path between two
different classes that never wavers changes once) and
`endpoint_label_agreement` (fraction of end frames whose label is the
classifier's label of the endpoint image itself).

`samples` passes `ec.kwargs` to `family.sample` (e.g. a flow's temperature)
and writes samples that are not images (text, tables) in their own format.
"""
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors, parallel
from gen_jax.data import variants
from gen_jax.utils import images, sample_files


def evaluate(ctx, name: str, ec) -> dict:
  kind = ec.type
  family, field = ctx.family, ctx.family.sample_field
  extra = {}                              # the interpolation's numbers
  if kind == "samples":
    kwargs = dict(ec.get("kwargs", {}))   # e.g. temperature=0.7 for flows
    x = ctx.samples(ctx.key(name), ec.num, **kwargs)
    spec = variants.model_spec(ctx.data.variant, ctx.spec)
    if spec[field].modality not in ("image", "points"):
      stem = ctx.stem(name)
      paths = sample_files.write(stem, x, spec[field]) if parallel.is_main() else [stem]
      return {f"{name}/file": (paths[0], f"{ec.num} samples ({spec[field].modality})")}
    grid, rows = x, None
  else:
    if family.encode is None or family.decode is None:
      raise errors.ConfigError(f"evaluator {kind!r} needs a family with encode/decode")
    split = ctx.split()
    raw = {k: jnp.asarray(v[:2 * ec.num]) for k, v in split.arrays.items()}
    x = variants.apply_batch(split.variant, raw, split.spec, ctx.key(name))[field]
    if kind == "reconstructions":
      rec = ctx.reconstruct_fn(ctx.params, ctx.state, x[:ec.num])
      grid, rows = np.concatenate([np.asarray(x[:ec.num]), np.asarray(rec)]), 2
    else:
      frames = path_frames(family, ctx.params, ctx.state, x, ec.num, ec.steps)
      grid, rows = _rows(x, frames), ec.num
      extra = path_checks(ctx, name, ec, x, frames)
  path = ctx.path(name, "png")
  if parallel.is_main():
    images.save_samples(path, grid, rows=rows, extent=ctx.config.get("plot_extent") or None)
  return {f"{name}/png": (path, f"{kind} grid"), **extra}


def prerequisites(ec) -> list:
  """The classifier run of a labelled interpolation (see feature_space.prerequisites)."""
  if ec.type != "interpolation" or not ec.get("classifier_workdir", ""):
    return []
  from gen_jax.evaluators import feature_space  # pylint: disable=g-import-not-at-top
  return feature_space.prerequisites(ec)


def path_frames(family, params, state, x, pairs: int, steps: int) -> jax.Array:
  """decode((1-t) z_a + t z_b) for t in linspace(0, 1, steps): f32[pairs, steps, ...].

  z_a = encode(x[:pairs]), z_b = encode(x[pairs:2 * pairs]).
  """
  z = family.encode(params, state, x[:2 * pairs])
  za, zb = z[:pairs], z[pairs:2 * pairs]
  t = jnp.linspace(0.0, 1.0, steps)[None, :, None]
  zt = (1 - t) * za[:, None] + t * zb[:, None]                 # [pairs, steps, D]
  dec = family.decode(params, state, zt.reshape(pairs * steps, -1))
  return dec.reshape((pairs, steps) + dec.shape[1:])


def _rows(x, frames) -> np.ndarray:
  """[x_a, frames..., x_b] per pair, flattened to f32[pairs * (steps + 2), ...]."""
  pairs = frames.shape[0]
  rows = jnp.concatenate([x[:pairs, None], frames, x[pairs:2 * pairs, None]], axis=1)
  return np.asarray(rows.reshape((-1,) + rows.shape[2:]))


def interpolate(family, params, state, x, pairs: int, steps: int) -> np.ndarray:
  """Rows of [x_a, decode((1-t) z_a + t z_b) for t in linspace(0, 1, steps), x_b]."""
  return _rows(x, path_frames(family, params, state, x, pairs, steps))


def path_stats(frames: np.ndarray, rec_a: np.ndarray, rec_b: np.ndarray) -> dict:
  """Endpoint and continuity numbers of interpolation paths (see the module docstring).

  Args:
    frames: f[P, T, ...] decoded frames of P paths of T >= 2 frames.
    rec_a, rec_b: f[P, ...] decode(encode(.)) of the start and end images.

  Returns:
    dict(endpoint_error, max_step_norm, max_step_ratio: floats; step_norms:
    f64[P, T-1]).
  """
  f = np.asarray(frames, np.float64)
  p, t = f.shape[:2]
  flat = f.reshape(p, t, -1)
  ends = np.concatenate([flat[:, 0] - np.reshape(rec_a, (p, -1)),
                         flat[:, -1] - np.reshape(rec_b, (p, -1))])
  steps = np.linalg.norm(np.diff(flat, axis=1), axis=-1)                  # [P, T-1]
  span = np.linalg.norm(flat[:, -1] - flat[:, 0], axis=-1) / (t - 1)      # [P]
  ratio = np.where(span > 0, steps.max(1) / np.maximum(span, 1e-30),
                   np.where(steps.max(1) > 0, np.inf, 1.0))
  return {"endpoint_error": float(np.sqrt(np.mean(ends * ends, axis=1)).max()),
          "max_step_norm": float(steps.max()), "max_step_ratio": float(ratio.max()),
          "step_norms": steps}


def label_stats(labels: np.ndarray, end_labels: np.ndarray) -> dict:
  """Label changes along paths.

  Args:
    labels: i[P, T] classifier labels of the frames of P paths.
    end_labels: i[P, 2] classifier labels of each path's start and end images.

  Returns:
    dict(label_changes: mean over paths of #{t: labels[t] != labels[t-1]},
    endpoint_label_agreement: fraction of the 2P end frames labelled as
    their endpoint image).
  """
  lab = np.asarray(labels)
  changes = (lab[:, 1:] != lab[:, :-1]).sum(axis=1)
  agree = np.stack([lab[:, 0], lab[:, -1]], axis=1) == np.asarray(end_labels)
  return {"label_changes": float(changes.mean()),
          "endpoint_label_agreement": float(agree.mean())}


def path_checks(ctx, name: str, ec, x, frames) -> dict:
  """The interpolation's numbers: endpoint and continuity checks, and classifier labels."""
  pairs, steps = frames.shape[:2]
  if steps < 2:
    raise errors.ConfigError(f"evals.{name}.steps must be >= 2 (got {steps})")
  rec = np.asarray(ctx.reconstruct_fn(ctx.params, ctx.state, x[:2 * pairs]))
  frames = np.asarray(frames)
  s = path_stats(frames, rec[:pairs], rec[pairs:])
  how = f"{pairs} paths of {steps} frames, pixel values on the [0, 1] scale"
  out = {
      f"{name}/endpoint_error": (s["endpoint_error"],
                                 f"max over end frames of the RMS difference to "
                                 f"decode(encode(endpoint image)); {how}"),
      f"{name}/max_step_norm": (s["max_step_norm"],
                                f"max L2 norm between consecutive frames; {how}"),
      f"{name}/max_step_ratio": (s["max_step_ratio"],
                                 f"max over paths of largest step / (||end - start|| / "
                                 f"(steps - 1)), 1 = even; {how}"),
  }
  if not ec.get("classifier_workdir", ""):
    return out
  from gen_jax.evaluators import feature_space  # pylint: disable=g-import-not-at-top
  clf = feature_space.load_classifier(ec)
  labels = clf.predict(frames.reshape((-1,) + frames.shape[2:])).reshape(pairs, steps)
  ends = clf.predict(np.asarray(x[:2 * pairs])).reshape(2, pairs).T               # [P, 2]
  ls = label_stats(labels, ends)
  who = f"{how}; classifier {clf.description}"
  out.update({
      f"{name}/labels": (" | ".join(" ".join(str(int(v)) for v in row) for row in labels),
                         f"predicted class of each frame, t = 0..1, one path per group; {who}"),
      f"{name}/label_changes": (ls["label_changes"],
                                f"changes of predicted class along a path, mean over paths; "
                                f"{who}"),
      f"{name}/endpoint_label_agreement": (ls["endpoint_label_agreement"],
                                           f"fraction of end frames with the class of their "
                                           f"endpoint image; {who}"),
  })
  return out
