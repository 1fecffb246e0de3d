"""Log-densities against direct formulas, normalization and Monte Carlo."""
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from gen_jax.nn import dists


def test_bernoulli_matches_direct_formula():
  logits = jnp.array([[-30.0, -2.0, 0.0, 3.0, 30.0]])
  x = jnp.array([[0.0, 1.0, 1.0, 0.0, 1.0]])
  p = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
  direct = np.sum(np.where(np.asarray(x) > 0, np.log(p), np.log1p(-p)))
  np.testing.assert_allclose(dists.bernoulli_log_prob(logits, x), [direct], rtol=1e-5)
  assert np.isfinite(dists.bernoulli_log_prob(jnp.array([[-500.0]]), jnp.array([[1.0]])))


def test_normal_log_prob_matches_scipy():
  rng = np.random.default_rng(0)
  x, mean, log_std = rng.normal(size=(3, 4, 6)).astype(np.float32)
  want = stats.norm.logpdf(x, mean, np.exp(log_std)).sum(-1)
  np.testing.assert_allclose(dists.normal_log_prob(x, mean, log_std), want, rtol=1e-5)
  np.testing.assert_allclose(dists.std_normal_log_prob(x), stats.norm.logpdf(x).sum(-1),
                             rtol=1e-5)


def test_kl_closed_form_matches_monte_carlo():
  mean = jnp.array([0.5, -1.0, 2.0])
  log_std = jnp.array([-0.3, 0.2, 0.0])
  z = mean + jnp.exp(log_std) * jax.random.normal(jax.random.key(0), (200_000, 3))
  mc = jnp.mean(dists.normal_log_prob(z, mean, log_std) - dists.std_normal_log_prob(z))
  np.testing.assert_allclose(dists.kl_normal_std_normal(mean, log_std), mc, atol=0.02)


def test_discretized_logistic_is_a_distribution_over_256_levels():
  levels = jnp.arange(256.0) / 255.0
  for mean, log_scale in [(0.3, -3.0), (0.0, -1.0), (0.99, -6.0), (0.5, 1.0)]:
    lp = dists.discretized_logistic_log_prob(
        levels[:, None], jnp.full((256, 1), mean), jnp.full((256, 1), log_scale))
    np.testing.assert_allclose(jnp.exp(jax.nn.logsumexp(lp)), 1.0, atol=1e-4)


def test_discretized_logistic_interior_bin_is_cdf_difference():
  x, mean, s = 100 / 255, 0.41, 0.02
  cdf = stats.logistic.cdf
  want = np.log(cdf(x + 0.5 / 255, mean, s) - cdf(x - 0.5 / 255, mean, s))
  got = dists.discretized_logistic_log_prob(jnp.array([[x]]), jnp.array([[mean]]),
                                            jnp.array([[np.log(s)]]))
  np.testing.assert_allclose(got, [want], rtol=1e-4)
