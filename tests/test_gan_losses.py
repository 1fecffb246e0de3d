"""GAN losses against hand computation; WGAN-GP penalty against finite differences."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models import gan_losses

REAL = jnp.array([2.0, -1.0])
FAKE = jnp.array([0.5, -3.0])
SHAPE = (3, 2, 2, 1)


def _softplus(v):
  return math.log1p(math.exp(v))


def test_nonsaturating_matches_hand_computation():
  d_want = (_softplus(-2.0) + _softplus(1.0)) / 2 + (_softplus(0.5) + _softplus(-3.0)) / 2
  g_want = (_softplus(-0.5) + _softplus(3.0)) / 2
  np.testing.assert_allclose(gan_losses.d_loss_nonsaturating(REAL, FAKE), d_want, rtol=1e-6)
  np.testing.assert_allclose(gan_losses.g_loss_nonsaturating(FAKE), g_want, rtol=1e-6)
  # Same as binary cross-entropy written with sigmoids: -log D(x) - log(1 - D(G(z))).
  s = lambda v: 1.0 / (1.0 + math.exp(-v))
  bce = (-math.log(s(2.0)) - math.log(s(-1.0))) / 2 - (
      math.log(1 - s(0.5)) + math.log(1 - s(-3.0))) / 2
  np.testing.assert_allclose(gan_losses.d_loss_nonsaturating(REAL, FAKE), bce, rtol=1e-6)


def test_nonsaturating_is_finite_for_extreme_logits():
  big = jnp.array([-200.0, 200.0])
  assert np.isfinite(gan_losses.d_loss_nonsaturating(big, big))
  np.testing.assert_allclose(gan_losses.g_loss_nonsaturating(big), 100.0, rtol=1e-6)


def test_hinge_and_wasserstein_match_hand_computation():
  # relu(1 - [2, -1]) = [0, 2]; relu(1 + [0.5, -3]) = [1.5, 0].
  np.testing.assert_allclose(gan_losses.d_loss_hinge(REAL, FAKE), 1.0 + 0.75, rtol=1e-6)
  np.testing.assert_allclose(gan_losses.g_loss_hinge(FAKE), 1.25, rtol=1e-6)
  np.testing.assert_allclose(gan_losses.d_loss_wasserstein(REAL, FAKE), -1.25 - 0.5, rtol=1e-6)
  np.testing.assert_allclose(gan_losses.g_loss_wasserstein(FAKE), 1.25, rtol=1e-6)


def test_losses_table():
  assert set(gan_losses.LOSSES) == {"nonsaturating", "hinge", "wasserstein"}
  d, g = gan_losses.LOSSES["hinge"]
  assert (d, g) == (gan_losses.d_loss_hinge, gan_losses.g_loss_hinge)
  for d, g in gan_losses.LOSSES.values():
    assert jnp.shape(d(REAL, FAKE)) == () and jnp.shape(g(FAKE)) == ()


def _real_fake():
  r1, r2 = jax.random.split(jax.random.key(0))
  return jax.random.normal(r1, SHAPE), 2.0 + jax.random.normal(r2, SHAPE)


def test_penalty_norm_covers_all_non_batch_axes():
  # critic(x) = <w, x> has gradient w at every point: the norm is ||w|| over all
  # 4 entries (sqrt 30), not over one axis, so the penalty is (sqrt 30 - 1)^2.
  w = jnp.array([[1.0, 2.0], [3.0, 4.0]])[..., None]              # [2, 2, 1]
  critic = lambda x: jnp.sum(w * x, axis=(1, 2, 3))
  real, fake = _real_fake()
  gp = gan_losses.gradient_penalty(critic, real, fake, jax.random.key(1))
  np.testing.assert_allclose(gp, (math.sqrt(30.0) - 1.0) ** 2, rtol=1e-5)


def _mlp_weights():
  rng = np.random.default_rng(0)
  return rng.normal(size=(4, 8)) * 0.9, rng.normal(size=8), rng.normal(size=8) * 0.7


def _critic_np(x, w1, b1, w2):
  """The test critic in float64 numpy: f64[B, 2, 2, 1] -> f64[B]."""
  return np.tanh(x.reshape(x.shape[0], -1) @ w1 + b1) @ w2


def test_penalty_matches_central_finite_differences():
  w1, b1, w2 = _mlp_weights()
  j1, jb1, j2 = (jnp.asarray(v, jnp.float32) for v in (w1, b1, w2))
  critic = lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ j1 + jb1) @ j2
  real, fake = _real_fake()
  rng = jax.random.key(7)
  gp = gan_losses.gradient_penalty(critic, real, fake, rng)

  # The same interpolates: one e ~ U[0, 1] per example, as documented.
  e = np.asarray(jax.random.uniform(rng, (SHAPE[0], 1, 1, 1)), np.float64)
  x_hat = e * np.asarray(real, np.float64) + (1.0 - e) * np.asarray(fake, np.float64)
  h = 1e-5
  grads = np.zeros_like(x_hat)
  for idx in np.ndindex(*SHAPE[1:]):
    step = np.zeros(SHAPE[1:])
    step[idx] = h
    grads[(slice(None),) + idx] = (_critic_np(x_hat + step, w1, b1, w2)
                                   - _critic_np(x_hat - step, w1, b1, w2)) / (2 * h)
  norms = np.sqrt((grads ** 2).reshape(SHAPE[0], -1).sum(-1))
  want = np.mean((norms - 1.0) ** 2)
  assert want > 0.1, want                      # the norms are far from 1: a real check
  np.testing.assert_allclose(gp, want, rtol=1e-3)


def test_penalty_is_differentiable_and_finite_where_the_critic_is_flat():
  real, fake = _real_fake()

  def gp_of(scale):
    # relu of a negative pre-activation: zero gradient, where ||g|| has no derivative.
    critic = lambda x: jax.nn.relu(-10.0 - scale * jnp.sum(jnp.abs(x), axis=(1, 2, 3)))
    return gan_losses.gradient_penalty(critic, real, fake, jax.random.key(2))

  value, grad = jax.jit(jax.value_and_grad(gp_of))(1.0)
  np.testing.assert_allclose(value, 1.0, atol=1e-5)   # ||g|| reads sqrt(eps) = 1e-6 here
  assert np.isfinite(grad)


def test_penalty_rejects_mismatched_shapes():
  real, fake = _real_fake()
  with pytest.raises(ValueError, match="one shape"):
    gan_losses.gradient_penalty(lambda x: x.sum((1, 2, 3)), real, fake[:2], jax.random.key(0))
