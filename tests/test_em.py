"""The EM trainer and the mixture families: scikit-learn parity, monotone EM, one model by
two routes (EM and SGD), whole-split batches, resume, devices, convergence and failures."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment, subprocess_env

from gen_jax import config_lib, errors, types
from gen_jax.data import pipeline
from gen_jax.data import spec as spec_lib
from gen_jax.models import gmm
from gen_jax.trainers import em, loop
from gen_jax.utils import writers

pytestmark = pytest.mark.usefixtures("cheap_compiles")

GMM_SMOKE = experiment("gmm_digits.py:smoke")
COVARIANCES = ("full", "diag", "spherical", "tied")


def _blobs(n=240, d=4, k=3, seed=0):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(k, d)) * 4
  return (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))
          * rng.uniform(0.5, 1.5, size=d)).astype(np.float64)


def _family(covariance="full", k=3, d=4, family="gmm", **model):
  c = config_lib.load_config(experiment("gmm_digits.py"))
  c.family = family
  c.model.update(num_components=k, covariance=covariance, **model)
  if family == "mixture_bernoulli":
    c.data.variant = "binarized_static"
  return gmm.make(c, spec_lib.example((d,)))


def _em(fam, x, iters, weights=None):
  """EM iterations in a lax.scan: (params, per-iteration log-likelihood per example)."""
  batch = {"x": jnp.asarray(x)}
  w = jnp.ones(len(x), x.dtype) if weights is None else jnp.asarray(weights)
  params, _ = fam.init(jax.random.key(0), {**batch, "weight": w})

  def body(p, _):
    stats = fam.em.e_step(p, {}, batch, w)
    p, _ = fam.em.m_step(p, {}, stats)
    return p, (stats["loglik"] + stats["log_prior"]) / stats["count"]
  return jax.lax.scan(body, params, None, length=iters)


def _sklearn_gmm(params, covariance):
  return gmm.to_sklearn(params, covariance)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_gmm_log_likelihood_equals_sklearn_and_em_is_monotone(covariance):
  x = _blobs()
  with jax.enable_x64(True):
    fam = _family(covariance, reg_covar=0.0)
    params, lls = _em(fam, x, 60)
    ours = np.asarray(fam.eval_fn(params, {}, {"x": jnp.asarray(x)}, None)["log_px"])
  theirs = _sklearn_gmm(params, covariance).score_samples(x)
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
  lls = np.asarray(lls)
  assert np.all(np.diff(lls) >= -1e-10), np.diff(lls).min()
  assert lls[-1] - lls[-2] < 1e-6   # and it converged


def test_em_step_matches_sklearns_update_from_the_same_responsibilities():
  from sklearn.mixture import _gaussian_mixture as skgm  # pylint: disable=g-import-not-at-top
  x = _blobs()
  with jax.enable_x64(True):
    fam = _family("full", reg_covar=1e-3)
    params, _ = _em(fam, x, 3)
    joint = np.asarray(gmm.gaussian_log_probs(params["model"], jnp.asarray(x), "full"))
    stats = fam.em.e_step(params, {}, {"x": jnp.asarray(x)}, jnp.ones(len(x)))
    new, _ = fam.em.m_step(params, {}, stats)
    joint = joint + np.asarray(jax.nn.log_softmax(params["model"]["logits"]))
  resp = np.exp(joint - np.logaddexp.reduce(joint, axis=1, keepdims=True))
  nk, means, covs = skgm._estimate_gaussian_parameters(x, resp, 1e-3, "full")
  np.testing.assert_allclose(np.asarray(new["model"]["means"]), means, atol=1e-9)
  g = _sklearn_gmm(new, "full")
  np.testing.assert_allclose(np.linalg.inv(g.precisions_cholesky_ @ np.swapaxes(
      g.precisions_cholesky_, -1, -2)), covs, atol=1e-9)
  np.testing.assert_allclose(g.weights_, nk / len(x), atol=1e-12)


def test_mixture_of_bernoullis_em_is_monotone_in_the_log_posterior():
  rng = np.random.default_rng(1)
  protos = rng.uniform(size=(3, 12)) < 0.5
  x = np.where(rng.uniform(size=(300, 12)) < 0.9, protos[rng.integers(0, 3, 300)],
               ~protos[rng.integers(0, 3, 300)]).astype(np.float64)
  with jax.enable_x64(True):
    fam = _family(family="mixture_bernoulli", k=3, d=12, pseudo_count=0.5)
    params, lls = _em(fam, x, 40)
    lp = np.asarray(fam.eval_fn(params, {}, {"x": jnp.asarray(x)}, None)["log_px"])
  assert np.all(np.diff(np.asarray(lls)) >= -1e-10)
  # Exact: the per-example probabilities of all 2^12 images sum to 1.
  grid = ((np.arange(2 ** 12)[:, None] >> np.arange(12)) & 1).astype(np.float64)
  with jax.enable_x64(True):
    total = jax.nn.logsumexp(fam.eval_fn(params, {}, {"x": jnp.asarray(grid)}, None)["log_px"])
  assert abs(float(total)) < 1e-9
  assert np.isfinite(lp).all()


def test_em_and_sgd_reach_the_same_optimum():
  x = _blobs(n=300, d=2, k=2, seed=3)
  with jax.enable_x64(True):
    fam = _family("diag", k=2, d=2)
    params, lls = _em(fam, x, 200)
    import optax  # pylint: disable=g-import-not-at-top
    p, _ = fam.init(jax.random.key(1), {"x": jnp.asarray(x)})
    tx = optax.adam(3e-2)

    def step(carry, _):
      p, s = carry
      loss, g = jax.value_and_grad(lambda q: fam.loss("model", q, {}, {"x": jnp.asarray(x)},
                                                      None)[0])(p)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), loss
    (p, _), losses = jax.lax.scan(step, (p, tx.init(p)), None, length=1500)
  em_ll = float(lls[-1])
  assert abs(-float(losses[-1]) - em_ll) < 1e-3, (-float(losses[-1]), em_ll)
  order = lambda q: np.argsort(np.asarray(q["model"]["means"][:, 0]))
  np.testing.assert_allclose(np.asarray(p["model"]["means"])[order(p)],
                             np.asarray(params["model"]["means"])[order(params)], atol=2e-2)


def test_whole_split_batches_pad_with_zero_weight_and_padding_changes_nothing():
  x = _blobs(n=10)
  loader = pipeline.WholeSplit({"x": x}, spec_lib.example((4,)), multiple=8)
  batch = loader.batch(5)
  assert batch["x"].shape == (16, 4) and batch["weight"].tolist() == [1.0] * 10 + [0.0] * 6
  assert loader.batches(0, 3)["x"].shape == (3, 16, 4)
  with jax.enable_x64(True):
    fam = _family("full")
    p, _ = fam.init(jax.random.key(0), {"x": jnp.asarray(x)})
    full = fam.em.e_step(p, {}, {"x": jnp.asarray(batch["x"])}, jnp.asarray(batch["weight"],
                                                                            jnp.float64))
    plain = fam.em.e_step(p, {}, {"x": jnp.asarray(x)}, jnp.ones(10))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-10), full, plain)
  # Two processes each hold their half of the padded rows.
  halves = [pipeline.WholeSplit({"x": x}, spec_lib.example((4,)), 8, i, 2).batch(0)
            for i in range(2)]
  assert np.array_equal(np.concatenate([h["weight"] for h in halves]), batch["weight"])


def _params(config, workdir):
  with loop.precision(config):
    run = loop.setup(config, workdir)
    try:
      return jax.device_get(loop.init_or_restore(run, require_checkpoint=True).params)
    finally:
      run.close()


EM_MESH_SCRIPT = r"""
import sys
from gen_jax import config_lib
from gen_jax.trainers import loop
loop.train(config_lib.load_config(sys.argv[1], ["eval_at_end=False", "mesh.data=8"]), sys.argv[2])
"""


def test_em_run_resumes_bit_identically_and_8_devices_equal_one(tmp_path):
  spec = GMM_SMOKE
  config = config_lib.load_config(spec, ["eval_at_end=False"])
  loop.train(config, str(tmp_path / "one"))
  half = config_lib.load_config(spec, ["eval_at_end=False", "total_steps=2"])
  loop.train(half, str(tmp_path / "resumed"))
  loop.train(config, str(tmp_path / "resumed"))
  jax.tree.map(np.testing.assert_array_equal, _params(config, str(tmp_path / "resumed")),
               _params(config, str(tmp_path / "one")))
  out = subprocess.run([sys.executable, "-c", EM_MESH_SCRIPT, spec, str(tmp_path / "eight")],
                       env=subprocess_env(8),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]

  def losses(name):
    return [r["loss"] for r in writers.read_jsonl(str(tmp_path / name / "metrics.jsonl"))
            if "loss" in r]
  # 1,500 digits padded to 1,504 rows over 8 devices: the same EM in float64.
  np.testing.assert_allclose(losses("eight"), losses("one"), rtol=0, atol=1e-9)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-8),
               _params(config, str(tmp_path / "eight")), _params(config, str(tmp_path / "one")))


def test_em_stops_when_converged_and_records_it(tmp_path, capsys):
  config = config_lib.load_config(GMM_SMOKE, ["em.tol=1e-2", "total_steps=200",
                                              "log_every_steps=10", "ckpt_every_steps=100",
                                              "eval_at_end=False"])
  loop.train(config, str(tmp_path))
  out = capsys.readouterr().out
  assert "converged at step" in out
  rows = writers.read_jsonl(str(tmp_path / "run_info.jsonl"))
  final = [r for r in rows if r.get("mode") == "train"][-1]
  assert final["converged_at"] <= final["end_step"] < 200
  assert os.path.isdir(tmp_path / "checkpoints" / str(final["end_step"]))


def _broken(kind):
  """A one-parameter family whose M-step lowers the likelihood or returns NaN."""
  def e_step(params, state, batch, weights):
    x = batch["x"][:, 0]
    lp = -0.5 * (x - params["model"]["mu"]) ** 2
    return {"loglik": jnp.sum(weights * lp), "count": jnp.sum(weights),
            "sx": jnp.sum(weights * x)}

  def m_step(params, state, stats):
    mean = stats["sx"] / stats["count"]
    if kind == "nan":
      return {"model": {"mu": jnp.where(params["model"]["mu"] != 0, jnp.nan, mean)}}, state
    return {"model": {"mu": params["model"]["mu"] + 1.0}}, state   # moves away: LL falls
  fam = types.Family(players=("model",), init=lambda r, b: ({"model": {"mu": jnp.zeros(())}},
                                                            {}),
                     loss=None, sample=None, eval_fn=None, em=types.EM(e_step, m_step))
  config = config_lib.base()
  config.em.update(tol=0.0, decrease_tol=1e-6)
  return em.make(fam, config)


def test_a_decreasing_em_step_is_reported_and_a_nonfinite_m_step_stops_in_one_line():
  x = jnp.asarray(np.linspace(-1, 1, 8)[:, None], jnp.float32)
  trainer = _broken("decrease")
  ts = trainer.init(None, {"x": x})
  history = []
  for _ in range(3):
    ts, m = trainer.step(ts, {"x": x}, None)
    history.append(jax.device_get(m))
  stacked = {k: np.array([h[k] for h in history]) for k in history[0]}
  warnings, stop = trainer.monitor(0, stacked)
  assert stop is None and len(warnings) == 2
  assert "fell by" in warnings[0] and "at step 2" in warnings[0] and "at step 3" in warnings[1]
  trainer = _broken("nan")
  ts = trainer.init(None, {"x": x})
  history = []
  for _ in range(3):
    ts, m = trainer.step(ts, {"x": x}, None)
    history.append(jax.device_get(m))
  assert np.isfinite(float(ts.params["model"]["mu"]))   # the bad M-step was not applied
  stacked = {k: np.array([h[k] for h in history]) for k in history[0]}
  with pytest.raises(errors.NonFiniteLossError, match=r"non-finite parameter values at step 2"):
    trainer.monitor(0, stacked)


def test_em_config_errors_are_one_line():
  c = config_lib.load_config(GMM_SMOKE, ["data.batch_size=100"])
  with pytest.raises(errors.ConfigError, match="set --config.data.batch_size=0"):
    config_lib.validate(c)
  c = config_lib.load_config(GMM_SMOKE, ["model.covariance=banded"])
  with pytest.raises(errors.ConfigError, match="model.covariance"):
    gmm.make(c, spec_lib.example((4,)))
  c = config_lib.load_config(experiment("quickstart.py:smoke"), ["trainer=em",
                                                                 "data.batch_size=0"])
  with pytest.raises(errors.ConfigError, match="has no closed-form EM; use trainer 'sgd'"):
    loop.setup(c, "/tmp/never-written")


def test_a_collapsed_covariance_stops_the_run_in_one_line_and_saves_nothing(tmp_path):
  # Three pixels are 0 in every digit: with no reg_covar their variance is 0.
  config = config_lib.load_config(GMM_SMOKE, ["model.reg_covar=0.0", "eval_at_end=False"])
  with pytest.raises(errors.NonFiniteLossError, match=r"non-finite parameter values at step 1 "
                     r"\(a collapsed covariance .*--config.model.reg_covar"):
    loop.train(config, str(tmp_path))
  assert not os.path.isdir(tmp_path / "checkpoints") or not os.listdir(tmp_path / "checkpoints")
