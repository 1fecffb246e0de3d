"""Samples written by modality: image grids, 2-D scatter plots, text, tables as CSV.

`write(stem, samples, field)` picks the format from the field's spec
(gen_jax.data.spec.Field) and returns the paths it wrote:
  image   `<stem>.png`, a grid of f32[N, H, W, C] images in [0, 1]
  points  `<stem>.png`, a point-density plot of f32[N, 2]
  tokens  `<stem>.txt`, each sample i32[L] decoded with the field's vocabulary
          (ids without a character are shown as <id>), samples separated by a
          rule line; without a vocabulary, the ids
  table   `<stem>.csv`, one row per sample i32[K], a header of column names
"""
import os

import numpy as np

from gen_jax.utils import images

RULE = "\n" + "-" * 40 + "\n"


def decode(ids, vocab: tuple) -> str:
  """i32[L] token ids -> text with the field's characters."""
  if not vocab:
    return " ".join(str(int(i)) for i in ids)
  return "".join(vocab[i] if 0 <= i < len(vocab) else f"<{int(i)}>" for i in np.asarray(ids))


def texts(samples: np.ndarray, vocab: tuple) -> list[str]:
  return [decode(s, vocab) for s in np.asarray(samples)]


def write(stem: str, samples: np.ndarray, field, extent: float | None = None,
          columns: tuple = ()) -> list[str]:
  """Writes `samples` (numpy, batch first) in the format of `field.modality`.

  Sequences of points (f32[N, T, D], e.g. a Gaussian HMM's) go to a CSV of
  (sequence, step, x0..x{D-1}) rows.
  """
  os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
  samples = np.asarray(samples)
  if field.modality == "points" and samples.ndim == 3:   # sequences of points [N, T, D]
    n, t, d = samples.shape
    rows = np.concatenate([np.repeat(np.arange(n), t)[:, None], np.tile(np.arange(t), n)[:, None],
                           samples.reshape(n * t, d)], axis=1)
    np.savetxt(stem + ".csv", rows, fmt=["%d", "%d"] + ["%.6g"] * d, delimiter=",",
               header=",".join(["sequence", "step"] + [f"x{i}" for i in range(d)]),
               comments="")
    return [stem + ".csv"]
  if field.modality in ("image", "points"):
    return [images.save_samples(stem + ".png", samples, extent=extent or None)]
  if field.modality == "tokens":
    with open(stem + ".txt", "w") as f:
      f.write(RULE.join(texts(samples, field.vocab)) + "\n")
    return [stem + ".txt"]
  if field.modality == "table":
    cols = columns or tuple(f"c{i}" for i in range(samples.shape[1]))
    np.savetxt(stem + ".csv", samples.astype(np.int64), fmt="%d", delimiter=",",
               header=",".join(cols), comments="")
    return [stem + ".csv"]
  raise ValueError(f"no sample format for modality {field.modality!r}")
