"""Figures of the anomaly application, drawn with PIL: per-class AUROC bars and
histograms of in- vs out-of-distribution scores."""
import os

import numpy as np
from PIL import Image, ImageDraw

COLORS = ((40, 100, 200), (220, 110, 20), (40, 160, 70), (150, 60, 170))


def _save(img: Image.Image, path: str) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  img.save(path)
  return path


def bars(path: str, classes: list, values: dict, title: str) -> str:
  """Grouped bars: one group per class, one bar per score; values {score: f[K]} in %."""
  width, height, left, top, ph = max(360, 90 + 60 * len(classes)), 340, 50, 40, 240
  img = Image.new("RGB", (width, height), "white")
  d = ImageDraw.Draw(img)
  d.text((8, 8), title, fill="black")
  pw = width - left - 20
  lo = 50.0                                                    # chance level at the bottom

  def y_of(v):
    return top + ph - (np.clip(v, lo, 100.0) - lo) / (100.0 - lo) * ph
  d.rectangle([left, top, left + pw, top + ph], outline="black")
  for v in range(50, 101, 10):
    y = y_of(v)
    d.line([left - 4, y, left + pw, y], fill=(225, 225, 225) if 50 < v < 100 else "black")
    d.text((8, y - 6), f"{v}", fill="black")
  group = pw / max(len(classes), 1)
  bar = group * 0.8 / max(len(values), 1)
  for j, (name, v) in enumerate(values.items()):
    for i in range(len(classes)):
      x0 = left + i * group + group * 0.1 + j * bar
      d.rectangle([x0, y_of(v[i]), x0 + bar - 1, top + ph], fill=COLORS[j % len(COLORS)])
    d.rectangle([left + 8 + 150 * j, height - 20, left + 18 + 150 * j, height - 10],
                fill=COLORS[j % len(COLORS)])
    d.text((left + 22 + 150 * j, height - 22), f"{name} (mean {np.mean(v):.1f})", fill="black")
  for i, c in enumerate(classes):
    d.text((left + i * group + group / 2 - 4, top + ph + 6), str(c), fill="black")
  return _save(img, path)


def histograms(path: str, scores: dict, in_where: str, ood_where: str, bins: int = 40) -> str:
  """One panel per score {name: (in f[N], ood f[M], auroc)}: normalized histograms of both."""
  pw, ph, pad = 420, 220, 50
  img = Image.new("RGB", (len(scores) * (pw + pad) + pad, ph + 110), "white")
  d = ImageDraw.Draw(img)
  d.text((8, 6), f"blue: {in_where} (in)   orange: {ood_where} (out)", fill="black")
  for k, (name, (a, b, auc)) in enumerate(scores.items()):
    x0, y0 = pad + k * (pw + pad), 40
    both = np.concatenate([a, b])
    lo, hi = np.percentile(both, [0.5, 99.5])
    hi = hi if hi > lo else lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    ha = np.histogram(np.clip(a, lo, hi), edges)[0] / max(len(a), 1)
    hb = np.histogram(np.clip(b, lo, hi), edges)[0] / max(len(b), 1)
    top = max(ha.max(), hb.max(), 1e-12)
    d.rectangle([x0, y0, x0 + pw, y0 + ph], outline="black")
    w = pw / bins
    for h, color, dx in ((ha, COLORS[0], 0.0), (hb, COLORS[1], w / 2)):
      for i, v in enumerate(h):
        if v > 0:
          xa = x0 + i * w + dx
          d.rectangle([xa, y0 + ph - v / top * ph, xa + w / 2 - 1, y0 + ph], fill=color)
    d.text((x0, y0 + ph + 6), f"{lo:.4g}", fill="black")
    d.text((x0 + pw - 60, y0 + ph + 6), f"{hi:.4g}", fill="black")
    d.text((x0, y0 + ph + 24), f"score: {name} (higher = more anomalous)", fill="black")
    d.text((x0, y0 + ph + 42), f"AUROC out vs in = {auc:.3f}", fill="black")
  return _save(img, path)
