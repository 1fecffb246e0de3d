"""Stacked MNIST: three digits as the R, G, B channels of one image (1,000 modes).

Metz et al. 2016 (Unrolled GANs), VEEGAN and PacGAN measure mode collapse by
how many of the 10^3 digit triples a generator produces. Each example here
stacks three images of the base dataset drawn with a fixed seed, so every
call gives the same data:
  x: u8[N, 28, 28, 3], channel c = base image idx[c, i];
  y: i32[N] = 100 * y0 + 10 * y1 + y2 (the mode).
N equals the size of the base split (60,000 train / 10,000 test for MNIST).
"stacked_digits" does the same with scikit-learn's embedded 8x8 digits
(offline smoke tests).
"""
import numpy as np

NAMES = ("stacked_mnist", "stacked_digits")
BASE = {"stacked_mnist": "mnist", "stacked_digits": "digits"}
SEEDS = {"train": 0, "test": 1}


def stack(split: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(u8[N, H, W, 3], i32[N]) from a grayscale base split x: u8[N, H, W, 1], y: i32[N]."""
  rng = np.random.default_rng((SEEDS.get(split, 2), 3))
  n = len(x)
  idx = np.stack([rng.permutation(n) for _ in range(3)])          # [3, N]
  images = np.concatenate([x[idx[c]] for c in range(3)], axis=-1)
  labels = 100 * y[idx[0]] + 10 * y[idx[1]] + y[idx[2]]
  return images.astype(np.uint8), labels.astype(np.int32)
