"""RBMs, DBNs and AIS against exact enumeration; CD-k against the exact gradient; PCD resume."""
import math
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from conftest import experiment

from gen_jax import config_lib, errors
from gen_jax.data import spec as spec_lib
from gen_jax.data import variants
from gen_jax.evaluators import ais_likelihood
from gen_jax.inference import ais
from gen_jax.models import dbn, rbm
from gen_jax.trainers import loop

pytestmark = pytest.mark.usefixtures("cheap_compiles")


# One compiled AIS (module-level jit, same shapes) for several tests.
AIS_CHAINS, AIS_BETAS = 100, jnp.asarray(ais.schedule("piecewise", 1000), jnp.float32)
_log_z_exact = jax.jit(ais.log_z_exact, static_argnums=1)
_free_energy = jax.jit(ais.free_energy, static_argnums=2)       # one compile per shape, not
_log_z_zero_weight = jax.jit(ais.log_z_zero_weight, static_argnums=1)   # one per eager op


def _rbm(seed, v, h, scale=1.0, gaussian=False):
  r = np.random.default_rng(seed)
  p = {"w": r.normal(0, scale, (v, h)), "bv": r.normal(0, 0.5, v), "bh": r.normal(0, 0.5, h)}
  if gaussian:
    p["log_sigma"] = r.normal(0, 0.2, v)
  return {k: jnp.asarray(x, jnp.float32) for k, x in p.items()}


def _bits(n):
  return ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(np.float32)


def _all_energies(p, v, h, visible="bernoulli"):
  """E(v_a, h_b) for every pair: f[A, B]."""
  a, b = len(v), len(h)
  vv = jnp.repeat(v, b, 0)
  hh = jnp.tile(h, (a, 1))
  return ais.energy(p, vv, hh, visible).reshape(a, b)


def test_free_energy_and_log_z_equal_brute_force_sums():
  p = _rbm(0, 5, 3, scale=1.0)
  v, h = jnp.asarray(_bits(5)), jnp.asarray(_bits(3))
  e = np.asarray(jax.jit(_all_energies)(p, v, h), np.float64)
  np.testing.assert_allclose(_free_energy(p, v, "bernoulli"), -np.log(np.exp(-e).sum(1)), rtol=1e-5)
  brute_z = np.log(np.exp(-e).sum())
  np.testing.assert_allclose(_log_z_exact(p, "bernoulli"), brute_z, rtol=1e-6)   # over h (3 < 5)
  swapped = {"w": p["w"].T, "bv": p["bh"], "bh": p["bv"]}             # same joint, 3 visible
  np.testing.assert_allclose(_log_z_exact(swapped, "bernoulli"), brute_z, rtol=1e-6)  # over v
  # Gaussian visible units: F against sum_h on a point, log Z against 2-D quadrature.
  g = _rbm(1, 2, 3, scale=0.7, gaussian=True)
  x = jnp.asarray([[0.3, -1.2]], jnp.float32)
  eg = _all_energies(g, x, h, "gaussian")
  np.testing.assert_allclose(_free_energy(g, x, "gaussian"), -jax.nn.logsumexp(-eg, 1),
                             rtol=1e-5)
  grid = np.linspace(-12, 12, 481, dtype=np.float32)
  pts = jnp.asarray(np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2))
  quad = jax.nn.logsumexp(-_free_energy(g, pts, "gaussian")) + 2 * math.log(grid[1] - grid[0])
  np.testing.assert_allclose(_log_z_exact(g, "gaussian"), quad, atol=1e-3)


def test_annealed_energy_is_the_interpolation_of_the_two_energies():
  target = _rbm(2, 4, 3)
  base = ais.base_rate_rbm(target, jnp.full((4,), 0.3), 1.0, 100)
  v, h = _bits(4)[::3], _bits(3)[[1, 2, 5, 6, 7, 0]]
  for beta in (0.0, 0.3, 1.0):
    mid = ais.interpolate(base, target, beta)
    np.testing.assert_allclose(ais.energy(mid, v, h), (1 - beta) * ais.energy(base, v, h)
                               + beta * ais.energy(target, v, h), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_ais_matches_exact_log_z_within_a_tenth_of_a_nat(visible):
  p = _rbm(3, 24, 16, scale=0.25, gaussian=visible == "gaussian")
  data_mean = jax.nn.sigmoid(p["bv"]) if visible == "bernoulli" else p["bv"]
  base = ais.base_rate_rbm(p, data_mean, 1.0, 1000)
  out = ais.ais(jax.random.key(0), base, p, AIS_BETAS, AIS_CHAINS, visible)
  exact = float(_log_z_exact(p, visible))
  assert abs(float(_log_z_zero_weight(base, visible)) - exact) > 1.0   # a real anneal
  assert abs(float(out["log_z"]) - exact) < 0.1
  assert 0 < float(out["log_z_se"]) < 0.1


def test_with_zero_weights_ais_is_exact():
  p = {**_rbm(4, 24, 16), "w": jnp.zeros((24, 16))}
  exact = float(_log_z_exact(p, "bernoulli"))
  assert float(_log_z_zero_weight(p, "bernoulli")) == pytest.approx(exact, abs=1e-4)
  # log_z_zero_weight ignores W (cossio's log_partition_zero_weight).
  assert float(_log_z_zero_weight(_rbm(4, 24, 16), "bernoulli")) == pytest.approx(exact, abs=1e-4)
  same = ais.ais(jax.random.key(1), ais.zero_weight_rbm(p), p, AIS_BETAS, AIS_CHAINS)
  np.testing.assert_allclose(same["log_w"], 0.0, atol=1e-5)
  assert float(same["log_z"]) == pytest.approx(exact, abs=1e-4)
  # From a base-rate model every intermediate model is factorial and sampled exactly.
  base = ais.base_rate_rbm(p, jnp.full((24,), 0.5), 1.0, 10)
  out = ais.ais(jax.random.key(2), base, p, AIS_BETAS, AIS_CHAINS)
  assert abs(float(out["log_z"]) - exact) < max(3 * float(out["log_z_se"]), 1e-3)


def test_paper_schedule_has_14503_temperatures():
  b = ais.schedule("paper")
  assert len(b) == ais.PAPER_NUM_BETAS == 14503 and b[0] == 0.0 and b[-1] == 1.0
  assert np.all(np.diff(b) >= 0) and np.isclose(np.diff(b)[-1], 1e-5)
  assert len(ais.schedule("piecewise", 1001)) == 1001
  with pytest.raises(errors.ConfigError, match="AIS schedule"):
    ais.schedule("geometric", 10)


def test_forward_ais_below_exact_below_reverse_ais_and_raise_below_exact():
  """The sandwich of Burda, Grosse & Salakhutdinov 2015 on a 3x2 RBM with many chains."""
  p = _rbm(5, 3, 2, scale=3.0)
  betas = ais.schedule("linear", 4)         # few temperatures: visible gaps
  m = 20000

  # Forward, reverse and RAISE runs share one compiled anneal (same shapes).
  exact = float(_log_z_exact(p, "bernoulli"))
  base = ais.zero_weight_rbm(p)
  log_z_base = float(_log_z_zero_weight(base, "bernoulli"))
  fwd = np.asarray(ais.ais(jax.random.key(0), base, p, betas, m)["log_w"], np.float64)
  # Exact samples of the target by enumeration start the reverse chains.
  v_all = _bits(3)
  log_p = -np.asarray(_free_energy(p, jnp.asarray(v_all), "bernoulli"), np.float64) - exact
  prob = np.exp(log_p) / np.exp(log_p).sum()
  v = jnp.asarray(v_all[np.random.default_rng(1).choice(8, size=m, p=prob)])
  rev = np.asarray(ais.reverse_ais(jax.random.key(2), base, p, betas, v), np.float64)
  raise_lp = np.asarray(ais.raise_log_prob(jax.random.key(2), base, p, betas, v, 1), np.float64)
  neg_f = -np.asarray(_free_energy(p, v, "bernoulli"), np.float64)
  true_lp = neg_f - exact
  recomposed = neg_f - log_z_base + rev   # RAISE with one chain: -F - log Z_base + reverse log w
  lo, hi = log_z_base + fwd.mean(), log_z_base - rev.mean()
  se_lo, se_hi = fwd.std() / math.sqrt(m), rev.std() / math.sqrt(m)
  assert lo + 3 * se_lo < exact < hi - 3 * se_hi, (lo, exact, hi)
  assert hi - lo > 0.05                      # the test would catch swapped bounds
  # Averaged in linear space (log-mean-exp), both sides converge on the exact value.
  lme = lambda x: np.logaddexp.reduce(x) - math.log(len(x))  # noqa: E731
  assert abs(log_z_base + lme(fwd) - exact) < 0.05
  assert abs(log_z_base - lme(rev) - exact) < 0.05
  # RAISE on exact samples: E_p[log q^] <= E_p[log q] <= E_p[log p] (Gibbs' inequality).
  gap = true_lp - raise_lp
  assert gap.mean() > 3 * gap.std() / math.sqrt(m), gap.mean()
  np.testing.assert_allclose(raise_lp, recomposed, rtol=1e-4, atol=1e-4)


def test_cd_k_gradient_approaches_the_exact_gradient_as_k_grows():
  v, h, n, reps = 6, 4, 10, 2000
  layer = _rbm(6, v, h, scale=1.5)
  data = jnp.asarray(np.random.default_rng(0).integers(0, 2, (n, v)), jnp.float32)

  def log_lik(p):
    return jnp.mean(-ais.free_energy(p, data)) - ais.log_z_exact(p)
  exact = jax.jit(jax.grad(log_lik))(layer)
  flat = lambda g: jnp.concatenate([g[k].ravel() for k in ("w", "bv", "bh")])  # noqa: E731
  # The k schedule 1 -> 30 over 29 updates: k = updates + 1, one compiled gradient for every k.
  s = rbm.settings(ml_collections.ConfigDict(dict(hidden=h, k=1, k_final=30, k_ramp_steps=29)))

  @jax.jit
  def cd_update(updates, rng):      # -(d surrogate / d params) = the CD-k update
    g = jax.grad(lambda p: rbm.cd_loss(p, {"updates": updates}, jnp.repeat(data, reps, 0), rng,
                                       s, "bernoulli")[0])(layer)
    return -flat(g)
  errs = {k: float(jnp.linalg.norm(cd_update(jnp.asarray(k - 1), jax.random.key(k)) - flat(exact))
                   / jnp.linalg.norm(flat(exact))) for k in (1, 3, 30)}
  assert errs[1] > errs[3] > errs[30] and errs[30] < 0.03 and errs[1] > 5 * errs[30], errs


def test_cd_k_schedule_and_traced_k_chains():
  s = rbm.settings(ml_collections.ConfigDict(dict(hidden=3, k=1, k_final=25, k_ramp_steps=100)))
  ks = [int(rbm.num_sweeps(jnp.asarray(t), s)) for t in (0, 50, 100, 1000)]
  assert ks == [1, 13, 25, 25]
  p, v = _rbm(7, 5, 3), jnp.asarray(_bits(5)[:8])
  static = jax.jit(lambda: ais.gibbs_k(jax.random.key(0), p, v, 4))()
  traced = jax.jit(lambda k: ais.gibbs_k(jax.random.key(0), p, v, k))(jnp.asarray(4))
  for a, b in zip(static, traced, strict=True):
    np.testing.assert_array_equal(a, b)
  for bad, match in ((dict(hidden=3, k=0), "model.k"), (dict(hidden=3, lr=1), "unknown model"),
                     (dict(hidden=3, method="pcd", negative_visible="mean"), "PCD chains")):
    with pytest.raises(errors.ConfigError, match=match):
      rbm.settings(ml_collections.ConfigDict(bad))


def test_binarized_fixed_draws_each_image_once():
  x = np.random.default_rng(0).integers(0, 256, (400, 8, 8, 1)).astype(np.uint8)
  x[:2] = 0
  x[2:4] = 255
  x[5] = x[4]
  x[6] = x[4]
  x[6, 0, 0, 0] ^= 1                           # differs from x[4] in one pixel's last bit
  apply = jax.jit(lambda y, r: variants.apply("binarized_fixed", y, r))
  a = np.asarray(apply(jnp.asarray(x), jax.random.key(0)))
  b = np.asarray(apply(jnp.asarray(x[::-1]), jax.random.key(1)))[::-1]
  np.testing.assert_array_equal(a, b)          # same bits whatever the key, batch or order
  assert set(np.unique(a)) == {0.0, 1.0} and a.dtype == np.float32
  assert abs(a.mean() - (x / 255).mean()) < 0.01
  assert not a[:2].any() and a[2:4].all()      # p = 0 and p = 1 exactly
  np.testing.assert_array_equal(a[4], a[5])    # identical images share their bits
  z = a[[4, 6]].reshape(2, -1)                  # nearly identical ones do not
  assert (z[0, 1:] != z[1, 1:]).mean() > 0.2
  same, variant = variants.eval_arrays("binarized_fixed", x)
  assert same is x and variant == "binarized_fixed"
  variants.check("binarized_fixed", False, "mnist")
  with pytest.raises(errors.ConfigError, match="already binary"):
    variants.check("binarized_fixed", True, "binarized_mnist")


def _config(**model):
  c = config_lib.base()
  c.model = ml_collections.ConfigDict(model)
  c.data.update(variant="binarized_static", batch_size=40)
  return c


def _fit(family, params, state, data, steps, lr, seed=0):
  """`steps` full-batch SGD updates of family.loss under lax.scan."""
  tx = optax.sgd(lr, momentum=0.5)

  def step(carry, rng):
    params, state, opt = carry
    (_, (state, _)), g = jax.value_and_grad(family.loss, argnums=1, has_aux=True)(
        "model", params, state, {"x": data}, rng)
    updates, opt = tx.update(g, opt, params)
    return (optax.apply_updates(params, updates), state, opt), None
  carry = (params, state, tx.init(params))
  (params, state, _), _ = jax.lax.scan(step, carry, jax.random.split(jax.random.key(seed), steps))
  return params, state


def _prototype_data(n=40, d=8, seed=0):
  r = np.random.default_rng(seed)
  protos = r.integers(0, 2, (3, d))
  flips = r.random((n, d)) < 0.1
  return jnp.asarray(np.abs(protos[r.integers(0, 3, n)] - flips), jnp.float32)


def test_dbn_from_the_transpose_starts_at_the_rbm_and_stacking_does_not_lower_the_bound():
  data = _prototype_data()
  spec = spec_lib.example((8,))
  layer0 = _rbm(8, 8, 6, scale=1.0)           # any first layer: the argument does not need CD
  log_p1 = float(jax.jit(lambda p: jnp.mean(-ais.free_energy(p, data)) - ais.log_z_exact(p))(
      layer0))

  two = dbn.make(_config(hidden=(6, 8), k=5), spec)
  p2, st2 = jax.jit(two.init)(jax.random.key(1), {"x": data})
  assert set(p2["model"]["layer_1"]) == {"dw", "dbv", "dbh"}     # stored as an offset
  p2 = {"model": {**p2["model"], "layer_0": layer0}}             # what init_from copies

  @jax.jit
  def bounds(params, rng):     # (exact bound, eval_fn's Monte-Carlo bound), nats per example
    stack = dbn.layers(params["model"])
    log_z = ais.log_z_exact(stack[-1])
    mc = two.eval_fn(params, st2, {"x": data}, rng, samples=400)["bound_plus_log_z"]
    return jnp.mean(dbn.exact_bound_plus_log_z(stack, data)) - log_z, jnp.mean(mc) - log_z
  before, _ = bounds(p2, jax.random.key(2))
  assert float(before) == pytest.approx(log_p1, abs=1e-4)       # the transpose: bound = log p1
  trained, _ = jax.jit(lambda p, st: _fit(two, p, st, data, 300, 0.05, seed=1))(p2, st2)
  for k, a in layer0.items():                                   # the lower layer is frozen
    np.testing.assert_array_equal(trained["model"]["layer_0"][k], a)
  after, mc = (float(b) for b in bounds(trained, jax.random.key(2)))
  assert after > log_p1 + 0.01, (log_p1, after)
  assert mc == pytest.approx(after, abs=0.05)                   # Monte Carlo over q agrees
  assert jax.jit(two.sample, static_argnums=3)(trained, st2, jax.random.key(3), 5).shape == (5, 8)


def test_gaussian_bernoulli_rbm_trained_by_cd_raises_the_exact_likelihood():
  r = np.random.default_rng(0)
  centers = r.normal(0, 2, (3, 6))
  data = jnp.asarray(centers[r.integers(0, 3, 60)] + 0.3 * r.normal(size=(60, 6)), jnp.float32)
  c = _config(visible="gaussian", hidden=8, k=1, init_scale=0.1)
  c.data.variant = "continuous"
  family = rbm.make(c, spec_lib.example((6,)))

  @jax.jit
  def fit_and_score(rng):
    params, state = family.init(rng, {"x": data})
    trained, _ = _fit(family, params, state, data, 400, 0.02)

    def log_lik(p):
      layer = p["model"]["layer_0"]
      return (jnp.mean(-ais.free_energy(layer, data, "gaussian"))
              - ais.log_z_exact(layer, "gaussian"))
    samples = family.sample(trained, state, jax.random.key(1), 4)
    return log_lik(params), log_lik(trained), params, trained, samples
  before, after, params, trained, samples = fit_and_score(jax.random.key(0))
  assert float(after) > float(before) + 1.0, (before, after)
  np.testing.assert_array_equal(params["model"]["layer_0"]["log_sigma"],     # learn_sigma off
                                trained["model"]["layer_0"]["log_sigma"])
  assert samples.shape == (4, 6) and np.isfinite(samples).all()
  with pytest.raises(errors.ConfigError, match="binary data"):
    rbm.check_data("bernoulli", "grayscale")
  with pytest.raises(errors.ConfigError, match="real values"):
    rbm.check_data("gaussian", "binarized_fixed")


def test_pcd_chains_are_sharded_state_and_resume_bit_identically(tmp_path, capsys):
  spec = experiment("rbm_mnist.py") + ":smoke"
  straight = config_lib.load_config(spec)
  assert straight.model.method == "pcd"
  straight.eval_at_end = False
  loop.train(straight, str(tmp_path / "a"))          # 10 steps, checkpoints at 5 and 10
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  shutil.rmtree(tmp_path / "b" / "checkpoints" / "10")
  loop.train(straight, str(tmp_path / "b"))          # resumes at 5, runs to 10
  assert "checkpoints at step 5" in capsys.readouterr().out
  with loop.precision(straight):
    run = loop.setup(straight, str(tmp_path / "a"))
    a, a5 = loop.restore(run)[0], loop.restore(run, 5)[0]
    run.close()
    run = loop.setup(straight, str(tmp_path / "b"))
    b = loop.restore(run)[0]
    shardings = run.shardings        # the smoke sets sharding="tensor"
    run.close()
  assert int(a.step) == int(b.step) == 10 and int(a.state["updates"]) == 10
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
  assert np.mean(np.asarray(a.state["chains"]) != np.asarray(a5.state["chains"])) > 0.05
  assert shardings.state["chains"].spec == jax.sharding.PartitionSpec("data", None)
  assert shardings.params["model"]["layer_0"]["w"].spec == jax.sharding.PartitionSpec()


def test_ais_evaluator_checks_its_keys_and_family():
  c = config_lib.load_config(experiment("rbm_mnist.py") + ":smoke")
  ec = c.evals.test_ais
  ais_likelihood.check("test_ais", ec, c)
  for key, value, match in (("schedule", "cubic", "schedule"), ("chains", 0, "chains"),
                            ("base", "uniform", "base"), ("tempers", 3, "unknown key")):
    bad = ml_collections.ConfigDict(ec.to_dict())
    bad[key] = value
    with pytest.raises(errors.ConfigError, match=match):
      ais_likelihood.check("test_ais", bad, c)
  c.family = "vae"
  with pytest.raises(errors.ConfigError, match="family 'rbm' or 'dbn'"):
    ais_likelihood.check("test_ais", ec, c)
