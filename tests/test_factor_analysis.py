"""Factor analysis and PPCA against scikit-learn, closed forms and the EM/SGD agreement.

Parity tests run in float64 inside `jax.enable_x64(True)` (never globally: other
tests share the process); parameters are created inside the context so they
are float64 too.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from sklearn.decomposition import PCA, FactorAnalysis

from gen_jax import config_lib, errors
from gen_jax.data import spec as spec_lib
from gen_jax.models import factor_analysis as fa

pytestmark = pytest.mark.usefixtures("cheap_compiles")


def _family(family="factor_analysis", k=2, d=5, solver="em", min_variance=1e-6,
            shape=None, variant="continuous"):
  c = config_lib.base()
  c.family = family
  c.data.variant = variant
  c.model = ml_collections.ConfigDict(dict(num_components=k, solver=solver,
                                           min_variance=min_variance, init_scale=0.1))
  return fa.make(c, spec_lib.example(shape or (d,)))


def _factor_data(n, d=5, k=3, seed=0):
  """sklearn's test_factor_analysis data: x = h W + noise with per-feature noise scales."""
  rng = np.random.default_rng(seed)
  h = rng.normal(size=(n, k))
  w = rng.normal(size=(k, d))
  noise = rng.gamma(1.0, size=d) * rng.normal(size=(n, d))
  return h @ w + noise + rng.normal(size=d)


def _random_params(family, d, k, seed=0):
  rng = np.random.default_rng(seed)
  p = {"w": jnp.asarray(rng.normal(size=(d, k))), "mu": jnp.asarray(rng.normal(size=d))}
  if family == "ppca":
    p["log_sigma2"] = jnp.asarray(np.log(0.3))
  else:
    p["log_psi"] = jnp.asarray(np.log(rng.uniform(0.1, 1.0, size=d)))
  return {"model": p}


def _init(family_obj, x, seed=0):
  """family.init on {"x": x}, jitted (op-by-op dispatch is slow on a shared CPU)."""
  return jax.jit(family_obj.init)(jax.random.key(seed), {"x": x})[0]


def _log_px(family_obj, params, x):
  """Per-example log p(x), nats: f[B]."""
  return jax.jit(lambda p, b: family_obj.eval_fn(p, {}, b, None)["log_px"])(params, {"x": x})


def _loss_and_grads(family_obj, params, x):
  fn = lambda q: family_obj.loss("model", q, {}, {"x": x}, None)[0]
  return jax.jit(jax.value_and_grad(fn))(params)


def _fit(family_obj, params, x, iters):
  """`iters` EM iterations in a lax.scan: (params, loglik per example before each step)."""
  batch, weights = {"x": x}, jnp.ones(x.shape[:1], x.dtype)

  def body(p, _):
    stats = family_obj.em.e_step(p, {}, batch, weights)
    p, _ = family_obj.em.m_step(p, {}, stats)
    return p, stats["loglik"] / stats["count"]
  return jax.jit(lambda p: jax.lax.scan(body, p, None, length=iters))(params)


def test_log_likelihood_equals_sklearn_factor_analysis_score_samples():
  d, k = 6, 2
  x = _factor_data(50, d)
  with jax.enable_x64(True):
    family = _family("factor_analysis", k, d)
    params = _random_params("factor_analysis", d, k)
    ours = np.asarray(_log_px(family, params, jnp.asarray(x)))
    p = params["model"]
    sk = FactorAnalysis(k).fit(x)
    sk.components_ = np.asarray(p["w"]).T
    sk.noise_variance_ = np.exp(np.asarray(p["log_psi"]))
    sk.mean_ = np.asarray(p["mu"])
    np.testing.assert_allclose(ours, sk.score_samples(x), rtol=0, atol=1e-6)
    # The E-step's loglik is the sum of the same per-example values.
    stats = jax.jit(family.em.e_step)(params, {}, {"x": jnp.asarray(x)}, jnp.ones(len(x)))
    np.testing.assert_allclose(stats["loglik"], ours.sum(), rtol=1e-12)


def test_log_likelihood_equals_sklearn_pca_score_samples():
  d, k = 6, 2
  x = _factor_data(50, d)
  with jax.enable_x64(True):
    family = _family("ppca", k, d)
    params = _random_params("ppca", d, k)
    ours = np.asarray(_log_px(family, params, jnp.asarray(x)))
    p = params["model"]
    sigma2 = float(np.exp(p["log_sigma2"]))
    u, s, _ = np.linalg.svd(np.asarray(p["w"]), full_matrices=False)   # W W^T = U s^2 U^T
    sk = PCA(k).fit(x)
    sk.components_, sk.explained_variance_ = u.T, s**2 + sigma2
    sk.noise_variance_, sk.mean_ = sigma2, np.asarray(p["mu"])
    np.testing.assert_allclose(ours, sk.score_samples(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("family,solver", [("factor_analysis", "em"), ("factor_analysis", "svd"),
                                           ("ppca", "em")])
def test_em_log_likelihood_never_decreases(family, solver):
  x = _factor_data(200, 6)
  with jax.enable_x64(True):
    fam = _family(family, 2, 6, solver)
    params = _init(fam, jnp.asarray(x))
    _, ll = _fit(fam, params, jnp.asarray(x), 100)
  ll = np.asarray(ll)
  assert np.all(np.diff(ll) >= -1e-10), np.diff(ll).min()
  assert ll[-1] > ll[0] + 0.1
  assert abs(ll[-1] - ll[-2]) < 1e-4       # and it converges


def test_ppca_em_converges_to_the_closed_form():
  x = _factor_data(300, 6)
  with jax.enable_x64(True):
    em = _family("ppca", 2, 6, "em")
    closed = _family("ppca", 2, 6, "closed_form")
    xb = {"x": jnp.asarray(x)}
    params = _init(em, xb["x"])
    p_em, _ = _fit(em, params, xb["x"], 400)
    p_cf, ll = _fit(closed, params, xb["x"], 2)       # one jump, then the optimum's loglik
    direct = jax.jit(lambda p: fa.ppca_closed_form(em.em.e_step(p, {}, xb, jnp.ones(len(x))),
                                                   2))(params)
    ll_em = float(jnp.mean(_log_px(em, p_em, xb["x"])))
    ll_cf = float(jnp.mean(_log_px(em, p_cf, xb["x"])))
    np.testing.assert_allclose(p_cf["model"]["log_sigma2"], direct["log_sigma2"], rtol=1e-12)
    assert abs(ll_em - ll_cf) < 1e-6 and ll_cf >= ll_em - 1e-9
    assert abs(float(ll[1]) - ll_cf) < 1e-9
    # The same subspace and noise: W W^T agrees although W is only defined up to rotation.
    w_em, w_cf = p_em["model"]["w"], p_cf["model"]["w"]
    np.testing.assert_allclose(w_em @ w_em.T, w_cf @ w_cf.T, atol=1e-4)
    # sklearn's PCA uses the N - 1 covariance; rescaled to N it is the same ML solution.
    sk = PCA(2).fit(x)
    n = len(x)
    np.testing.assert_allclose(np.exp(float(p_cf["model"]["log_sigma2"])),
                               sk.noise_variance_ * (n - 1) / n, rtol=1e-8)


def test_model_covariance_matches_sample_covariance_of_three_factor_data():
  x = _factor_data(2000, 5, 3)
  fam = _family("factor_analysis", 3, 5, "svd")
  xb = {"x": jnp.asarray(x, jnp.float32)}
  params = _init(fam, xb["x"])
  params, _ = _fit(fam, params, xb["x"], 200)
  p = params["model"]
  model_cov = np.asarray(fa.covariance(p["w"], jnp.exp(p["log_psi"])))
  assert np.abs(np.cov(x.T, bias=True) - model_cov).mean() < 0.1
  np.testing.assert_allclose(p["mu"], x.mean(0), atol=1e-4)


@pytest.mark.parametrize("k", [1, 2, 6])
def test_covariance_times_precision_is_identity(k):
  with jax.enable_x64(True):
    p = _random_params("factor_analysis", 6, k, seed=k)["model"]
    psi = jnp.exp(p["log_psi"])
    eye = fa.covariance(p["w"], psi) @ fa.precision(p["w"], psi)
    np.testing.assert_allclose(eye, np.eye(6), atol=1e-10)


@pytest.mark.parametrize("family", ["factor_analysis", "ppca"])
def test_em_and_sgd_reach_the_same_log_likelihood(family):
  x = jnp.asarray(_factor_data(300, 5, 2, seed=1), jnp.float32)
  fam = _family(family, 2, 5, "svd" if family == "factor_analysis" else "closed_form")
  xb = {"x": x}
  params = _init(fam, xb["x"])
  p_em, _ = _fit(fam, params, x, 100)
  tx = optax.adam(0.05)

  def step(carry, _):
    p, opt = carry
    (loss, _), g = jax.value_and_grad(lambda q: fam.loss("model", q, {}, xb, None),
                                      has_aux=True)(p)
    updates, opt = tx.update(g, opt, p)
    return (optax.apply_updates(p, updates), opt), loss
  (p_sgd, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=600))(
      (params, tx.init(params)))
  ll = lambda p: float(jnp.mean(_log_px(fam, p, x)))
  assert ll(p_sgd) <= ll(p_em) + 1e-4
  assert abs(ll(p_sgd) - ll(p_em)) < 2e-3, (ll(p_sgd), ll(p_em))


@pytest.mark.parametrize("family,solver", [("factor_analysis", "em"), ("factor_analysis", "svd"),
                                           ("ppca", "em"), ("ppca", "closed_form")])
def test_constant_pixel_variance_is_floored_never_nan(family, solver):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(100, 4))
  x[:, 2] = 0.25                           # a constant pixel
  x[:, 3] = rng.normal(size=100) * 1e-5    # a variance (1e-10) below the floor
  x = jnp.asarray(x, jnp.float32)
  floor = 1e-6
  fam = _family(family, 1, 4, solver, min_variance=floor)
  params = _init(fam, x)
  params, ll = _fit(fam, params, x, 30)
  assert np.all(np.isfinite(np.asarray(ll)))
  p = params["model"]
  if family == "factor_analysis":
    psi = np.exp(np.asarray(p["log_psi"]))
    np.testing.assert_allclose(psi[2:], floor, rtol=1e-5)
  loss, grads = _loss_and_grads(fam, params, x)
  assert np.isfinite(float(loss))
  assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
  # The floor also holds for an SGD parameter pushed below it.
  low = jax.tree.map(lambda v: v, params)
  key = "log_psi" if family == "factor_analysis" else "log_sigma2"
  low["model"][key] = low["model"][key] - 100.0
  assert np.isfinite(float(_loss_and_grads(fam, low, x)[0]))


def test_zero_floor_and_bad_settings_are_config_errors():
  with pytest.raises(errors.ConfigError, match="min_variance"):
    _family(min_variance=0.0)
  with pytest.raises(errors.ConfigError, match="solver"):
    _family("factor_analysis", solver="closed_form")
  with pytest.raises(errors.ConfigError, match="num_components"):
    _family("ppca", k=5, d=5)
  with pytest.raises(errors.ConfigError, match="num_components"):
    _family("factor_analysis", k=0)


def test_padding_weights_and_split_sums_give_the_same_statistics():
  x = jnp.asarray(_factor_data(40, 5), jnp.float32)
  fam = _family("factor_analysis", 2, 5)
  params = _init(fam, x)
  e_step = jax.jit(fam.em.e_step)
  full = e_step(params, {}, {"x": x}, jnp.ones(40))
  padded = e_step(params, {}, {"x": jnp.concatenate([x, x[:8]])},
                  jnp.concatenate([jnp.ones(40), jnp.zeros(8)]))
  halves = [e_step(params, {}, {"x": h}, jnp.ones(20)) for h in (x[:20], x[20:])]
  summed = jax.tree.map(lambda a, b: a + b, *halves)
  for other in (padded, summed):
    for key in full:
      np.testing.assert_allclose(other[key], full[key], rtol=2e-5, atol=1e-4)


def test_images_sample_encode_decode_and_sample_moments():
  fam = _family("factor_analysis", 3, shape=(4, 4, 1), variant="grayscale")
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(200, 4, 4, 1)), jnp.float32)
  params = _init(fam, x)
  params, _ = _fit(fam, params, x, 10)
  s = jax.jit(fam.sample, static_argnums=3)(params, {}, jax.random.key(1), 64)
  assert s.shape == (64, 4, 4, 1) and s.dtype == jnp.float32
  assert float(s.min()) >= 0.0 and float(s.max()) <= 1.0
  z, rec = jax.jit(lambda p, x: (fam.encode(p, {}, x), fam.decode(p, {}, fam.encode(p, {}, x))))(
      params, x[:8])
  assert z.shape == (8, 3) and rec.shape == (8, 4, 4, 1)
  # Unclipped samples have the model's moments (points family, same parameters).
  pts = _family("factor_analysis", 3, 16)
  big = jax.jit(pts.sample, static_argnums=3)(params, {}, jax.random.key(2), 20000)
  p = params["model"]
  cov = np.asarray(fa.covariance(p["w"], jnp.exp(p["log_psi"])))
  np.testing.assert_allclose(np.cov(np.asarray(big).T), cov, atol=0.01)
  np.testing.assert_allclose(np.asarray(big).mean(0), p["mu"], atol=0.01)


def test_tiny_floor_in_float32_stays_finite_off_the_training_support():
  """sklearn's 1e-12 floor in float32: a pixel constant in training, inked at test time."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(200, 4)).astype(np.float32)
  x[:, 1] = 0.0
  fam = _family("factor_analysis", 2, 4, "svd", min_variance=1e-12)
  x = jnp.asarray(x)
  params = _init(fam, x)
  params, ll = _fit(fam, params, x, 20)
  test = x[:3].at[:, 1].set(0.25)
  lp = np.asarray(_log_px(fam, params, test))
  assert np.all(np.isfinite(np.asarray(ll))) and np.all(np.isfinite(lp))
  assert np.all(lp < -1e9)     # (0.25^2 / 1e-12) / 2 nats of misfit, not NaN
  # The quadratic form is a sum of squares: log p(x) never exceeds its value at x = mu.
  p = params["model"]
  at_mean = float(_log_px(fam, params, p["mu"][None])[0])
  assert np.all(np.asarray(_log_px(fam, params, x)) <= at_mean + 1e-3)
