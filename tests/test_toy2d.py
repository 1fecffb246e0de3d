"""Toy 2-D densities: fixed points per split, exact densities that integrate to one."""
import numpy as np
import pytest

from gen_jax.data import sources, toy2d
from gen_jax.evaluators import density


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_splits_are_fixed_distinct_and_continuous(name):
  train, test = sources.load(name, "train"), sources.load(name, "test")
  assert train.x.shape == (100_000, 2) and test.x.shape == (10_000, 2)
  assert train.continuous and train.x.dtype == np.float32
  np.testing.assert_array_equal(toy2d.generate(name, "test"), test.x)
  assert not np.allclose(train.x[:10], test.x[:10])


@pytest.mark.parametrize("name", sorted(toy2d.LOG_PROBS))
def test_exact_densities_integrate_to_one_and_cover_the_data(name):
  points, area = density.grid_points(6.0, 800)
  mass = np.exp(toy2d.log_prob(name, points)).sum() * area
  assert mass == pytest.approx(1.0, abs=5e-3)
  assert np.all(np.isfinite(toy2d.log_prob(name, toy2d.generate(name, "test"))))


def test_checkerboard_is_uniform_on_eight_squares():
  x = toy2d.generate("checkerboard", "train")
  cells = np.floor(x / 2.0).astype(int) + 2                       # 0..3 per axis
  counts = np.zeros((4, 4), int)
  np.add.at(counts, (cells[:, 0], cells[:, 1]), 1)
  i, j = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
  occupied = counts > 0
  np.testing.assert_array_equal(occupied, (i + j) % 2 == 0)
  assert np.all(np.abs(counts[occupied] / len(x) - 1 / 8) < 0.01)
  assert toy2d.log_prob("checkerboard", np.array([[1.0, 1.0]]))[0] == pytest.approx(-np.log(32))
  assert toy2d.log_prob("checkerboard", np.array([[1.0, -1.0]]))[0] == -np.inf
