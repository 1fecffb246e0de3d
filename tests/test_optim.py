"""Optimizer construction and the Burda schedule."""
import ml_collections
import numpy as np
import pytest

from gen_jax import errors, optim


def test_burda_schedule_values_and_length():
  sched = optim.burda_schedule(1e-3, epoch_steps=10, rounds=3)
  # Round i lasts 3^i epochs at lr 1e-3 * 10^(-i/7).
  for step, i in [(0, 0), (9, 0), (10, 1), (39, 1), (40, 2), (129, 2), (500, 2)]:
    np.testing.assert_allclose(sched(step), 1e-3 * 10 ** (-i / 7), rtol=1e-5)
  assert optim.burda_total_steps(10, 3) == 130
  assert optim.burda_total_steps(60000 // 20, 8) == 9_840_000   # the paper's 3,280 epochs


def test_every_player_needs_a_section():
  c = ml_collections.ConfigDict({"optim": {"d": optim.adam(1e-3)}})
  with pytest.raises(errors.ConfigError, match="no section for player"):
    optim.make_optimizers(c, ("d", "g"))
  with pytest.raises(errors.ConfigError, match="valid choices: burda, constant, cosine"):
    optim.make_schedule(optim.adam(1e-3, schedule="linear"))
