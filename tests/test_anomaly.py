"""Anomaly detection: ranking metrics against scikit-learn and closed forms, the one-class
split, training-time corruption, and the application's scores recomputed by hand."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment, needs_tfds
from sklearn import metrics as skm

from gen_jax import applications, config_lib, errors, parallel
from gen_jax.applications import anomaly
from gen_jax.data import pipeline, sources, variants
from gen_jax.evaluators import context
from gen_jax.metrics import ranking

pytestmark = pytest.mark.usefixtures("cheap_compiles")   # tiny models: compiling is the cost


# --- ranking metrics ---------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_auroc_and_average_precision_equal_sklearn_with_ties(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(20, 400))
  y = rng.random(n) < rng.uniform(0.1, 0.9)
  y[:2] = (True, False)
  s = np.round(rng.normal(size=n) + 0.7 * y, 1)          # one decimal: many ties
  assert len(np.unique(s)) < n
  assert ranking.auroc(s, y) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
  assert ranking.average_precision(s, y) == pytest.approx(
      skm.average_precision_score(y, s), abs=1e-12)


def test_average_ranks_match_scipy():
  from scipy import stats  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(1).integers(0, 7, 200)
  np.testing.assert_array_equal(ranking.average_ranks(x), stats.rankdata(x))


def test_auroc_of_random_scores_is_one_half_within_three_standard_errors():
  rng = np.random.default_rng(0)
  n1, n0 = 400, 600
  y = np.r_[np.ones(n1), np.zeros(n0)].astype(int)
  se = np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))             # the null distribution's s.e.
  assert ranking.auroc_se(0.5, n1, n0) == pytest.approx(se, rel=1e-12)
  aucs = [ranking.auroc(rng.random(n1 + n0), y) for _ in range(20)]
  assert all(abs(a - 0.5) < 3 * se for a in aucs)
  assert np.std(aucs) == pytest.approx(se, rel=0.4)


def test_auroc_is_one_for_perfect_zero_for_reversed_half_for_constant_scores():
  y = np.r_[np.zeros(50), np.ones(30)].astype(int)
  s = np.arange(80.0)
  assert ranking.auroc(s, y) == 1.0
  assert ranking.average_precision(s, y) == pytest.approx(1.0, abs=1e-12)
  assert ranking.auroc(-s, y) == 0.0
  assert ranking.auroc(np.zeros(80), y) == 0.5
  assert ranking.average_precision(np.zeros(80), y) == pytest.approx(30 / 80)


def test_hanley_mcneil_standard_error_matches_monte_carlo():
  # Exponential scores: the model under which Hanley & McNeil's Q1, Q2 are exact.
  rng = np.random.default_rng(0)
  n1, n0, rate = 60, 90, 0.4                 # anomalies ~ Exp(mean 1/rate) > normals ~ Exp(1)
  y = np.r_[np.ones(n1), np.zeros(n0)].astype(int)
  aucs = [ranking.auroc(np.r_[rng.exponential(1 / rate, n1), rng.exponential(1.0, n0)], y)
          for _ in range(600)]
  true_auc = 1 / (1 + rate)                  # P(Exp(rate) > Exp(1))
  assert np.mean(aucs) == pytest.approx(true_auc, abs=0.01)
  assert np.std(aucs) == pytest.approx(ranking.auroc_se(true_auc, n1, n0), rel=0.12)


def test_ranking_rejects_bad_input():
  with pytest.raises(errors.ConfigError, match="both normal and anomalous"):
    ranking.auroc([1.0, 2.0], [1, 1])
  with pytest.raises(errors.DataError, match="not finite"):
    ranking.auroc([1.0, np.nan], [0, 1])
  with pytest.raises(errors.ConfigError, match="0 .normal. or 1"):
    ranking.auroc([1.0, 2.0], [0, 2])


# --- the one-class training split --------------------------------------------------------

def _data(**kw):
  c = config_lib.base()
  c.data.update({"name": "digits", "batch_size": 16, "labels": True, **kw})
  return c.data


def _rows(x):
  return {r.tobytes() for r in x.reshape(len(x), -1)}


@pytest.mark.parametrize("c", (0, 7))
def test_one_class_split_trains_on_class_c_of_the_train_split_only(c):
  train, test = sources.load("digits", "train"), sources.load("digits", "test")
  train_c, test_c = _rows(train.x[train.y == c]), _rows(test.x[test.y == c])
  assert not train_c & test_c            # precondition: no image is in both splits
  loader = pipeline.train_loader(train, _data(classes=(c,)), seed=0)
  assert loader.n == int((train.y == c).sum())
  seen = set()
  for step in range(2 * loader.steps_per_epoch):
    b = loader.batch(step)
    assert (b["y"] == c).all()
    rows = _rows(b["x"])
    assert rows <= train_c and not rows & test_c
    seen |= rows
  assert len(seen) >= loader.n - loader.global_batch     # every epoch drops < B examples
  # The evaluation split stays whole: every class, and anomalies are y != c.
  ctx_split = pipeline.eval_examples(sources.from_config(_data(classes=(c,)), "test"), _data())
  assert set(np.unique(ctx_split[0]["y"])) == set(range(10))
  assert len(ctx_split[0]["y"]) == len(test.y)


def test_one_class_split_errors_are_one_line():
  train = sources.load("digits", "train")
  with pytest.raises(errors.ConfigError, match=r"class 12 is not in digits:train"):
    pipeline.train_loader(train, _data(classes=(3, 12)), seed=0)
  moons = config_lib.base().data
  moons.update(name="moons", variant="continuous", batch_size=16, classes=(0,))
  with pytest.raises(errors.ConfigError, match="needs a labelled dataset"):
    pipeline.train_loader(sources.load("moons", "train"), moons, seed=0)


# --- training-time corruption ------------------------------------------------------------

def _corrupted(kind="mutate", level=0.3, process_index=0, process_count=1, batch=32):
  d = _data(batch_size=batch)
  d.corruption.update(kind=kind, level=level)
  return pipeline.train_loader(sources.load("digits", "train"), d, seed=5,
                               process_index=process_index, process_count=process_count)


def test_mutation_replaces_the_stated_fraction_of_raw_values_and_keeps_labels():
  clean, noisy = _corrupted(level=0.0), _corrupted(level=0.3)
  assert isinstance(noisy, pipeline.Corrupted)
  a, b = clean.batches(3, 2), noisy.batches(3, 2)
  np.testing.assert_array_equal(a["x"], _corrupted(kind="none").batches(3, 2)["x"])
  np.testing.assert_array_equal(a["y"], b["y"])
  assert b["x"].dtype == np.uint8
  changed = (a["x"] != b["x"]).mean()
  expected = 0.3 * 255 / 256                  # a redrawn value equals the old one 1 time in 256
  n = a["x"].size
  assert abs(changed - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
  np.testing.assert_array_equal(noisy.batch(3)["x"], b["x"][0])     # a function of the step
  assert not np.array_equal(noisy.batch(4)["x"], b["x"][0])


def test_corruption_is_the_same_on_any_number_of_processes():
  one = _corrupted().batch(7)["x"]
  parts = [_corrupted(process_index=i, process_count=2).batch(7)["x"] for i in range(2)]
  np.testing.assert_array_equal(np.concatenate(parts), one)


def test_corruption_errors_are_one_line():
  with pytest.raises(errors.ConfigError, match="unknown corruption 'blur'"):
    _corrupted(kind="blur")
  with pytest.raises(errors.ConfigError, match="probability in"):
    _corrupted(level=1.5)
  with pytest.raises(errors.ConfigError, match="perturbs shuffled image batches"):
    _corrupted(batch=0)


# --- the application ----------------------------------------------------------------------

class _Ctx:
  mesh = parallel.make_mesh(-1, 1)
  params = state = None
  batches = context.Context.batches   # the evaluators' batching, on this bare context


def test_per_example_scores_keep_order_and_drop_padding():
  x = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
  fn = jax.jit(lambda p, s, b, i: b["x"].sum(-1) + 0 * i)
  out = anomaly.per_example(_Ctx(), fn, {"x": x}, 10, "test")
  np.testing.assert_array_equal(out, x.sum(-1))


def test_ood_transforms_of_raw_images():
  x = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 1)).astype(np.uint8)
  np.testing.assert_array_equal(anomaly.transform("invert", x, 255), 255 - x)
  assert anomaly.transform("transpose", x, 255).shape == (3, 5, 4, 1)
  np.testing.assert_array_equal(anomaly.transform("hflip", x, 255)[:, :, 0], x[:, :, -1])


def _one_class(score, classes=(3,)):
  c = config_lib.load_config(experiment("anomaly_mnist.py") + ":smoke")
  c.application.update(score=score, classes=classes, eval_kwargs={"k": 4, "chunk": 4})
  c.application.overrides = {"total_steps": 4, "log_every_steps": 2, "ckpt_every_steps": 4,
                             "eval_at_end": False}
  return c


def test_one_class_recon_scores_are_decoder_errors_and_the_auroc_is_theirs(tmp_path):
  config, workdir = _one_class("recon"), str(tmp_path)
  out = applications.run(config, workdir)
  test = sources.load("digits", "test")
  n_anomalies = int((test.y != 3).sum())
  assert f"the {n_anomalies} examples of classes != 3 against {297 - n_anomalies}" in \
      out["class_3/auroc_recon"][1]
  assert os.path.isfile(out["plots/auroc_png"][0])
  sub = anomaly.model_config(config.application, {"data.classes": (3,)})
  with open(os.path.join(workdir, "class_3", "config.json")) as f:
    assert json.load(f)["data"]["classes"] == [3]
  with applications.Restored(sub, os.path.join(workdir, "class_3")) as r:
    ctx = r.ctx
    scored = anomaly.score_split(ctx, config.application, "recon", "")
    split = ctx.split()
    x = variants.apply_batch(split.variant, {"x": jnp.asarray(split.arrays["x"])}, split.spec,
                             jax.random.key(0))["x"]     # fixed binarization: no rng used
    rec = ctx.family.decode(ctx.params, ctx.state, ctx.family.encode(ctx.params, ctx.state, x))
  by_hand = np.asarray(jnp.mean((rec - x) ** 2, axis=(1, 2, 3)), np.float64)
  np.testing.assert_allclose(scored.values, by_hand, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(scored.y, test.y)
  assert out["class_3/auroc_recon"][0] == pytest.approx(
      100 * skm.roc_auc_score(test.y != 3, by_hand), abs=1e-3)


def test_anomaly_config_errors_are_one_line(tmp_path):
  config = _one_class("nll")
  config.application.score = "density"
  with pytest.raises(errors.ConfigError, match="unknown anomaly score 'density'"):
    applications.run(config, str(tmp_path))
  config = _one_class("nll", classes=())
  with pytest.raises(errors.ConfigError, match="needs application.classes"):
    applications.run(config, str(tmp_path))
  config = _one_class("nll")
  config.application.overrides = {"data": {"nmae": "mnist"}}
  with pytest.raises(errors.ConfigError, match="has no such key"):
    applications.run(config, str(tmp_path))


def test_a_finished_run_of_another_config_is_not_reused(tmp_path):
  config, workdir = _one_class("nll"), str(tmp_path)
  applications.run(config, workdir)
  config.application.overrides["seed"] = 1
  with pytest.raises(errors.ConfigError, match="differs from the run's"):
    applications.run(config, workdir)


@pytest.mark.slow
@needs_tfds("fashion_mnist")
@needs_tfds("mnist")
def test_fashion_mnist_likelihood_prefers_mnist_and_the_ratio_corrects_it(tmp_path):
  """Nalisnick et al. 2019: a model of Fashion-MNIST gives MNIST a higher likelihood (AUROC
  well below 1/2; Ren et al. 2019: 0.089); the likelihood ratio against a background
  model of mutated inputs gains much of it back. A small logistic VAE, 200 steps per model,
  500 test images of each dataset."""
  c = config_lib.load_config(experiment("ood_fashion_to_mnist.py") + ":vae")
  c.application.update(model="experiments/vae_mnist.py:smoke", num_examples=500,
                       eval_kwargs={"k": 4, "chunk": 4})
  c.application.overrides.update({"total_steps": 200, "steps_per_dispatch": 50,
                                  "log_every_steps": 100, "ckpt_every_steps": 200,
                                  "model": {"hidden": (64,), "latent_dim": 8},
                                  "data": {"batch_size": 64}})
  out = applications.run(c, str(tmp_path))
  assert out["auroc_nll"][0] < 0.3
  assert out["ood/nll_mean"][0] < out["in/nll_mean"][0]
  assert out["auroc_likelihood_ratio"][0] > out["auroc_nll"][0] + 0.3
