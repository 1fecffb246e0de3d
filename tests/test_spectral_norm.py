"""flax.linen.SpectralNorm as the spectral-normalization wrapper for GAN critics.

The wrapper keeps the power-iteration vector `u` and the estimate `sigma` in a
mutable collection ('batch_stats' unless `collection_name` says otherwise);
`update_stats` is a required keyword of its __call__, and applying with
update_stats=True needs that collection passed as mutable. Conv kernels
[kh, kw, c_in, c_out] are normalized as the matrix [kh * kw * c_in, c_out]
(Miyato et al. 2018), which bounds the kernel, not the convolution operator.
"""
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest


def _run_power_iteration(module, variables, x, calls, collection="batch_stats"):
  """`calls` applies with update_stats=True (module.n_steps iterations each); new stats."""
  stats = variables[collection]
  for _ in range(calls):
    _, upd = module.apply({"params": variables["params"], collection: stats}, x,
                          update_stats=True, mutable=[collection])
    stats = upd[collection]
  return stats


def _matrix_with_singular_values(s, rows, cols, seed=0):
  rng = np.random.default_rng(seed)
  u, _ = np.linalg.qr(rng.normal(size=(rows, len(s))))
  v, _ = np.linalg.qr(rng.normal(size=(cols, len(s))))
  return (u * np.asarray(s)) @ v.T


def test_dense_sigma_converges_to_largest_singular_value():
  module = nn.SpectralNorm(nn.Dense(5), n_steps=10)
  x = jax.random.normal(jax.random.key(1), (4, 7))
  variables = module.init(jax.random.key(0), x, update_stats=True)
  assert set(variables["batch_stats"]) == {"layer_instance/kernel/u",
                                           "layer_instance/kernel/sigma"}
  kernel = _matrix_with_singular_values([3.0, 1.5, 1.0, 0.5, 0.2], 7, 5)
  params = {"layer_instance": {"kernel": jnp.asarray(kernel, jnp.float32),
                               "bias": jnp.arange(5.0)}}
  variables = {"params": params, "batch_stats": variables["batch_stats"]}
  stats = _run_power_iteration(module, variables, x, calls=3)
  np.testing.assert_allclose(stats["layer_instance/kernel/sigma"], 3.0, rtol=1e-5)

  # Evaluation (update_stats=False) uses kernel / sigma; stats are read, not written.
  y = module.apply({"params": params, "batch_stats": stats}, x, update_stats=False)
  np.testing.assert_allclose(y, np.asarray(x) @ kernel / 3.0 + np.arange(5.0), atol=1e-5)


def test_stats_need_a_mutable_collection_and_update_stats():
  module = nn.SpectralNorm(nn.Dense(3))
  x = jnp.ones((2, 4))
  variables = module.init(jax.random.key(0), x, update_stats=True)
  with pytest.raises(flax.errors.ModifyScopeVariableError):
    module.apply(variables, x, update_stats=True)
  module.apply(variables, x, update_stats=False)              # fine without mutable
  _, upd = module.apply(variables, x, update_stats=False, mutable=["batch_stats"])
  jax.tree.map(np.testing.assert_array_equal, upd["batch_stats"], variables["batch_stats"])
  _, upd = module.apply(variables, x, update_stats=True, mutable=["batch_stats"])
  assert not np.array_equal(upd["batch_stats"]["layer_instance/kernel/u"],
                            variables["batch_stats"]["layer_instance/kernel/u"])


def test_mutable_true_hands_back_the_normalized_kernel_as_params():
  # A training step must pass mutable=[collection], not mutable=True: with True the
  # returned 'params' hold kernel / sigma, and keeping them rescales the weights.
  module = nn.SpectralNorm(nn.Dense(3), n_steps=50)
  x = jnp.ones((2, 4))
  variables = module.init(jax.random.key(0), x, update_stats=True)
  kernel = np.asarray(variables["params"]["layer_instance"]["kernel"])
  _, upd = module.apply(variables, x, update_stats=True, mutable=True)
  returned = np.asarray(upd["params"]["layer_instance"]["kernel"])
  np.testing.assert_allclose(returned, kernel / np.linalg.svd(kernel, compute_uv=False)[0],
                             rtol=1e-4)


def test_conv_sigma_is_that_of_the_kernel_as_a_matrix():
  module = nn.SpectralNorm(nn.Conv(4, (3, 3)), n_steps=20, collection_name="spectral")
  x = jax.random.normal(jax.random.key(1), (1, 4, 4, 2))
  variables = module.init(jax.random.key(0), x, update_stats=True)
  assert set(variables) == {"params", "spectral"}
  kernel = np.asarray(variables["params"]["layer_instance"]["kernel"], np.float64)
  assert kernel.shape == (3, 3, 2, 4)
  stats = _run_power_iteration(module, variables, x, calls=10, collection="spectral")
  svals = np.linalg.svd(kernel.reshape(-1, 4), compute_uv=False)
  assert svals[1] / svals[0] < 0.95, svals   # a gap, so 200 steps converge
  np.testing.assert_allclose(stats["layer_instance/kernel/sigma"], svals[0], rtol=1e-4)
  # A different matricization has a different top singular value: the check discriminates.
  other = np.linalg.svd(kernel.reshape(3, -1), compute_uv=False)[0]
  assert abs(other - svals[0]) > 1e-2 * svals[0]
