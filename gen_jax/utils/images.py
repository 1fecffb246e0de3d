"""Image grids saved as PNG."""
import os

import numpy as np
from PIL import Image


def grid(images: np.ndarray, rows: int | None = None, pad: int = 1) -> np.ndarray:
  """f32[N, H, W, C] in [0, 1] -> u8[rows*(H+pad)+pad, cols*(W+pad)+pad, C].

  Values outside [0, 1] are clipped (infinities included); NaN pixels are drawn
  mid-grey (0.5), so a diverged sample shows as a flat grey patch.
  """
  images = np.clip(np.nan_to_num(np.asarray(images, np.float32), nan=0.5), 0.0, 1.0)
  n, h, w, c = images.shape
  cols = int(np.ceil(n / rows)) if rows else int(np.ceil(np.sqrt(n)))
  rows = rows or int(np.ceil(n / cols))
  out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
  for i in range(n):
    r, q = divmod(i, cols)
    out[pad + r * (h + pad):pad + r * (h + pad) + h,
        pad + q * (w + pad):pad + q * (w + pad) + w] = images[i]
  return (out * 255.0 + 0.5).astype(np.uint8)


def save_grid(path: str, images: np.ndarray, rows: int | None = None,
              scale: int | None = None) -> str:
  """Saves a grid PNG upscaled by `scale` (nearest; default: tiles ~64 px) and returns its path."""
  g = grid(images, rows)
  scale = max(1, 64 // images.shape[1]) if scale is None else scale
  img = Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g)
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  img.save(path)
  return path


def points_image(points: np.ndarray, extent: float, size: int = 256) -> np.ndarray:
  """2-D points f32[N, 2] -> u8[size, size] histogram on [-extent, extent]^2 (dark = dense).

  Row 0 is the top (largest y). Counts are shown on a square-root scale so
  sparse modes stay visible next to dense ones.
  """
  p = np.asarray(points, np.float64)
  hist, _, _ = np.histogram2d(p[:, 1], p[:, 0], bins=size,
                              range=[[-extent, extent], [-extent, extent]])
  v = np.sqrt(hist[::-1] / max(hist.max(), 1.0))
  return (255.0 * (1.0 - v) + 0.5).astype(np.uint8)


def heatmap_image(values: np.ndarray) -> np.ndarray:
  """f32[H, W] -> u8[H, W, 3], min..max mapped black -> red -> yellow -> white.

  `values[0]` is drawn as the top row.
  """
  v = np.asarray(values, np.float64)
  v = (v - v.min()) / max(v.max() - v.min(), 1e-12)
  r = np.clip(3.0 * v, 0, 1)
  g = np.clip(3.0 * v - 1.0, 0, 1)
  b = np.clip(3.0 * v - 2.0, 0, 1)
  return (np.stack([r, g, b], -1) * 255.0 + 0.5).astype(np.uint8)


def save_image(path: str, array: np.ndarray) -> str:
  """Saves u8[H, W] or u8[H, W, 3] as PNG and returns its path."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  Image.fromarray(np.asarray(array, np.uint8)).save(path)
  return path


def save_samples(path: str, x: np.ndarray, rows: int | None = None,
                 extent: float | None = None) -> str:
  """Images f32[N, H, W, C] -> grid; 2-D points f32[N, 2] -> density-of-points plot.

  `extent` bounds the plotted square for points (default: the 99.5th
  percentile of |x|, so a few far outliers do not shrink the picture).
  """
  x = np.asarray(x)
  if x.ndim == 2 and x.shape[-1] == 2:
    if extent is None:
      finite = x[np.isfinite(x).all(-1)]
      extent = float(np.percentile(np.abs(finite), 99.5)) * 1.05 if len(finite) else 1.0
    return save_image(path, points_image(x, max(extent, 1e-6)))
  if x.ndim != 4:
    raise ValueError(f"cannot draw samples of shape {x.shape}: expected [N, H, W, C] or [N, 2]")
  return save_grid(path, x, rows=rows)


def labelled_panel(tiles: list[list[np.ndarray]], row_labels: list[str],
                   col_labels: list[str], title: str = "", tile: int = 160) -> np.ndarray:
  """Rows x columns of images (u8[H, W] or u8[H, W, 3]) resized to `tile` px, with labels.

  Returns u8[H', W', 3] with a title line, column labels on top and row labels
  on the left, so a committed figure says what each picture is.
  """
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top
  left, top = 110, 36 if title else 20
  rows, cols = len(tiles), len(tiles[0])
  canvas = Image.new("RGB", (left + cols * (tile + 4), top + rows * (tile + 4)), "white")
  draw = ImageDraw.Draw(canvas)
  if title:
    draw.text((4, 2), title, fill="black")
  for j, label in enumerate(col_labels):
    draw.text((left + j * (tile + 4) + 4, top - 16), label, fill="black")
  for i, row in enumerate(tiles):
    draw.text((4, top + i * (tile + 4) + tile // 2 - 6), row_labels[i], fill="black")
    for j, img in enumerate(row):
      im = Image.fromarray(np.asarray(img, np.uint8)).convert("RGB").resize((tile, tile))
      canvas.paste(im, (left + j * (tile + 4), top + i * (tile + 4)))
  return np.asarray(canvas)
