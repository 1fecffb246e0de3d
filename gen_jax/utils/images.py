"""Image grids saved as PNG."""
import os

import numpy as np
from PIL import Image


def grid(images: np.ndarray, rows: int | None = None, pad: int = 1) -> np.ndarray:
  """f32[N, H, W, C] in [0, 1] -> u8[rows*(H+pad)+pad, cols*(W+pad)+pad, C]."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
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
