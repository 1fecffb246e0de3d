"""Shared layers: the stride-1 SAME convolution's formulations against XLA's and numpy's."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn import layers

pytestmark = pytest.mark.usefixtures("cheap_compiles")

# (kernel h, kernel w, C_in, C_out): 3x3, 1x1, non-square.
SHAPES = [(3, 3, 2, 16), (1, 1, 5, 7), (5, 3, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_formulation_matches_xla_in_values_and_gradients(shape):
  kh, kw, ci, co = shape
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 6, 5, ci)), jnp.float32)
  k = jnp.asarray(rng.normal(size=shape), jnp.float32)
  g = jnp.asarray(rng.normal(size=(2, 6, 5, co)), jnp.float32)

  def run(formulation):
    f = lambda x, k: jnp.sum(layers.conv_same(x, k, formulation) * g)
    return layers.conv_same(x, k, formulation), jax.grad(f, argnums=(0, 1))(x, k)

  want, (want_dx, want_dk) = run("xla")
  # The convolution of numpy's own definition, as an independent reference.
  xp = np.pad(np.asarray(x, np.float64), ((0, 0), (kh // 2,) * 2, (kw // 2,) * 2, (0, 0)))
  brute = sum(np.einsum("bhwc,co->bhwo", xp[:, i:i + 6, j:j + 5], np.asarray(k, np.float64)[i, j])
              for i in range(kh) for j in range(kw))
  np.testing.assert_allclose(want, brute, rtol=1e-5, atol=1e-5)
  names = ["auto"] + (["matmul"] if kh == kw == 1 else [])
  for name in names:
    y, (dx, dk) = run(name)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-5, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(dk, want_dk, rtol=1e-5, atol=1e-4, err_msg=name)


def test_conv_module_has_flax_conv_variables_and_outputs():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 4, 4, 3)), jnp.float32)
  ours, ref = layers.Conv(6, (3, 3)), nn.Conv(6, (3, 3))
  v_ours, v_ref = ours.init(jax.random.key(0), x), ref.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, v_ours) == jax.tree.map(jnp.shape, v_ref)
  np.testing.assert_array_equal(v_ours["params"]["kernel"], v_ref["params"]["kernel"])
  v = jax.tree.map(lambda a: a + 0.1, v_ref)     # a nonzero bias too
  np.testing.assert_allclose(ours.apply(v, x), ref.apply(v, x), rtol=1e-5, atol=1e-5)


def test_bad_formulations_and_kernels_are_rejected():
  x, k = jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2, 2))
  with pytest.raises(ValueError, match="formulation must be one of"):
    layers.conv_same(x, k, "fft")
  with pytest.raises(ValueError, match="needs a 1x1 kernel"):
    layers.conv_same(x, k, "matmul")
  with pytest.raises(ValueError, match="odd kernel sizes"):
    layers.conv_same(x, jnp.zeros((2, 2, 2, 2)))
