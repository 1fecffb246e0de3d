"""Image grids: layout, clipping, and what a diverged (non-finite) sample looks like."""
import warnings

import numpy as np

from gen_jax.utils import images


def test_grid_layout_and_clipping():
  x = np.zeros((3, 2, 2, 1), np.float32)
  x[0] = 2.0     # clipped to white
  x[1] = -1.0    # clipped to black
  x[2] = 0.5
  g = images.grid(x, rows=1, pad=1)
  assert g.shape == (4, 10, 1) and g.dtype == np.uint8
  assert (g[1:3, 1:3] == 255).all() and (g[1:3, 4:6] == 0).all()
  assert (g[1:3, 7:9] == 128).all()
  assert (g[0] == 255).all()   # the padding is white


def test_grid_draws_nan_grey_and_clips_infinities_without_warnings():
  x = np.array([np.nan, np.inf, -np.inf, 0.25], np.float32).reshape(4, 1, 1, 1)
  with warnings.catch_warnings():
    warnings.simplefilter("error")   # the old cast warned "invalid value encountered in cast"
    g = images.grid(x, rows=1, pad=0)
  assert g[0, :, 0].tolist() == [128, 255, 0, 64]
