"""Synthetic-table metrics against brute force, scipy and scikit-learn; the evaluator's floors."""
import collections
import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import experiment

from gen_jax import config_lib, errors, parallel, types
from gen_jax.data import bif, sources, variants
from gen_jax.evaluators import context, synthetic_tabular
from gen_jax.metrics import tabular
from gen_jax.models import bayes_net

pytestmark = pytest.mark.usefixtures("cheap_compiles")

CARDS = (2, 3, 2, 4)


def _table(seed: int, n: int, cards=CARDS) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return np.stack([rng.integers(0, c, n) for c in cards], axis=1)


def _brute_tv(a, b, cols) -> float:
  """TV of the empirical joint of columns `cols` by counting tuples."""
  pa = collections.Counter(map(tuple, a[:, cols]))
  pb = collections.Counter(map(tuple, b[:, cols]))
  keys = set(pa) | set(pb)
  return 0.5 * sum(abs(pa[k] / len(a) - pb[k] / len(b)) for k in keys)


def test_tv_is_zero_for_identical_tables_and_one_for_disjoint_supports():
  a = _table(0, 40)
  np.testing.assert_allclose(tabular.marginal_tv(a, a, CARDS), 0.0, atol=1e-12)
  np.testing.assert_allclose(tabular.pairwise_tv(a, a, CARDS), 0.0, atol=1e-12)
  # The same rows in another order and repeated are the same empirical distribution.
  np.testing.assert_allclose(tabular.pairwise_tv(a, np.concatenate([a[::-1], a]), CARDS), 0.0,
                             atol=1e-12)
  zeros, ones = np.zeros((5, 4), int), np.ones((7, 4), int)
  np.testing.assert_allclose(tabular.marginal_tv(zeros, ones, CARDS), 1.0)
  np.testing.assert_allclose(tabular.pairwise_tv(zeros, ones, CARDS), 1.0)


def test_marginal_and_pairwise_tv_equal_brute_force_counting():
  a, b = _table(1, 37), _table(2, 53)
  marg, pair = tabular.marginal_tv(a, b, CARDS), tabular.pairwise_tv(a, b, CARDS)
  for u in range(4):
    assert marg[u] == pytest.approx(_brute_tv(a, b, [u]), abs=1e-12)
    assert pair[u, u] == pytest.approx(marg[u], abs=1e-12)
  for u, v in itertools.combinations(range(4), 2):
    assert pair[u, v] == pytest.approx(_brute_tv(a, b, [u, v]), abs=1e-12)
    assert pair[v, u] == pytest.approx(pair[u, v], abs=1e-12)
  brute = np.mean([_brute_tv(a, b, [u, v]) for u, v in itertools.combinations(range(4), 2)])
  assert tabular.mean_over_pairs(pair) == pytest.approx(brute, abs=1e-12)
  with pytest.raises(ValueError, match="outside"):
    tabular.marginal_tv(a, np.full((3, 4), 3), CARDS)


def test_wasserstein_equals_scipy_per_feature_for_unequal_sizes_and_ties():
  stats = pytest.importorskip("scipy.stats")
  rng = np.random.default_rng(3)
  a = np.concatenate([rng.normal(size=(31, 2)), rng.integers(0, 4, (31, 2))], axis=1)
  b = np.concatenate([rng.normal(1.0, 2.0, size=(17, 2)), rng.integers(1, 6, (17, 2))], axis=1)
  got = tabular.wasserstein_1d(a, b)
  want = [stats.wasserstein_distance(a[:, d], b[:, d]) for d in range(4)]
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(tabular.wasserstein_1d(a, a), 0.0, atol=1e-12)
  # A shift by c moves every quantile by c.
  np.testing.assert_allclose(tabular.wasserstein_1d(a, a + 0.25), 0.25, rtol=1e-12)


def test_correlation_matches_numpy_and_treats_constant_features_as_uncorrelated():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 3))
  np.testing.assert_allclose(tabular.correlation(x), np.corrcoef(x, rowvar=False), atol=1e-12)
  with_const = np.concatenate([x, np.zeros((50, 1))], axis=1)
  c = tabular.correlation(with_const)
  np.testing.assert_allclose(c[:3, :3], np.corrcoef(x, rowvar=False), atol=1e-12)
  np.testing.assert_array_equal(c[3], [0.0, 0.0, 0.0, 1.0])
  y = rng.normal(size=(40, 4))
  d = np.corrcoef(with_const[:, :3], rowvar=False) - np.corrcoef(y[:, :3], rowvar=False)
  c_y = np.corrcoef(y, rowvar=False)
  full = np.block([[d, -c_y[:3, 3:]], [-c_y[3:, :3], np.zeros((1, 1))]])
  got = tabular.correlation_difference(with_const, y)
  assert got["frobenius"] == pytest.approx(np.linalg.norm(full), abs=1e-12)
  assert got["mean_abs"] == pytest.approx(np.abs(full[np.triu_indices(4, 1)]).mean(), abs=1e-12)


def test_discriminator_auroc_equals_a_hand_written_fold_loop():
  from sklearn import linear_model, metrics, model_selection, preprocessing
  rng = np.random.default_rng(5)
  a, b = rng.normal(size=(60, 3)), rng.normal(0.3, 1.0, size=(40, 3))
  x = np.concatenate([a, b])
  y = np.r_[np.zeros(60), np.ones(40)]
  scores = np.zeros(100)
  for tr, te in model_selection.StratifiedKFold(4, shuffle=True, random_state=7).split(x, y):
    scaler = preprocessing.StandardScaler().fit(x[tr])
    lr = linear_model.LogisticRegression(max_iter=1000).fit(scaler.transform(x[tr]), y[tr])
    scores[te] = lr.decision_function(scaler.transform(x[te]))
  want = metrics.roc_auc_score(y, scores)
  assert tabular.discriminator_auroc(a, b, folds=4, seed=7) == pytest.approx(want, abs=1e-12)
  same = tabular.discriminator_auroc(rng.normal(size=(500, 2)), rng.normal(size=(500, 2)))
  apart = tabular.discriminator_auroc(rng.normal(size=(200, 2)), rng.normal(5.0, 1.0, (200, 2)))
  assert abs(same - 0.5) < 0.06 and apart > 0.999, (same, apart)


@pytest.mark.parametrize("classifier", tabular.CLASSIFIERS)
def test_tstr_accuracy_equals_sklearn_on_one_hot_encoder_features(classifier):
  from sklearn import linear_model, preprocessing, tree
  train, test = _table(6, 300), _table(7, 100)
  train[:, 3] = (train[:, 0] + train[:, 1]) % 4      # a learnable target
  test[:, 3] = (test[:, 0] + test[:, 1]) % 4
  enc = preprocessing.OneHotEncoder(categories=[np.arange(c) for c in CARDS[:3]])
  f_train, f_test = (enc.fit_transform(t[:, :3]).toarray() for t in (train, test))
  model = (linear_model.LogisticRegression(max_iter=1000) if classifier == "logistic" else
           tree.DecisionTreeClassifier(min_samples_leaf=5, random_state=0))
  want = np.mean(model.fit(f_train, train[:, 3]).predict(f_test) == test[:, 3])
  ours = tabular.one_hot(train[:, :3], CARDS[:3]), tabular.one_hot(test[:, :3], CARDS[:3])
  got = tabular.classifier_accuracy(ours[0], train[:, 3], ours[1], test[:, 3], classifier)
  assert got == pytest.approx(want, abs=1e-12) and got > 0.6
  # A training set of one class predicts it; majority_accuracy is its rate.
  const = np.full(300, 2)
  rate = np.mean(test[:, 3] == 2)
  assert tabular.classifier_accuracy(ours[0], const, ours[1], test[:, 3], classifier) == rate
  assert tabular.majority_accuracy(const, test[:, 3]) == rate


# ---------------------------------------------------------------------------------------------
# The evaluator: a true sampler meets the real floor, a wrong one does not.

def _context(config, family, params) -> context.Context:
  raw = sources.from_config(config.data, config.data.train_split).spec
  return context.Context(family=family, params=params, state={}, step=0, config=config,
                         spec=raw, mesh=parallel.make_mesh(), rng=jax.random.key(0),
                         workdir="", writer=None)


def test_true_network_samples_score_at_the_floor_and_a_uniform_table_much_worse():
  config = config_lib.load_config(experiment("bn_alarm.py:smoke"),
                                  ["data.options.num_train=3000", "data.options.num_test=3000"])
  raw = sources.from_config(config.data, "train").spec
  family = bayes_net.make(config, variants.model_spec("raw", raw))
  true = [jnp.asarray(t) for t in bif.find("asia").log_cpts()]
  params = {"true": {"model": {"logits": true}},
            "uniform": {"model": {"logits": [jnp.zeros_like(t) for t in true]}}}
  ec = ml_collections.ConfigDict(dict(type="synthetic_tabular", num_samples=3000))
  res = {k: synthetic_tabular.evaluate(_context(config, family, p), "t", ec)
         for k, p in params.items()}
  for key in ("marginal_tv_mean", "marginal_tv_max", "pairwise_tv_mean"):
    t, u = res["true"][f"t/{key}"][0], res["uniform"][f"t/{key}"][0]
    floor = res["true"][f"t/{key}_floor"][0]
    assert floor == res["uniform"][f"t/{key}_floor"][0]      # real vs real: no model in it
    assert t < 2.5 * floor and u > 8 * floor, (key, t, u, floor)
  t, u = res["true"], res["uniform"]
  assert t["t/n_synthetic"][0] == 3000 and t["t/n_real"][0] == 3000
  assert t["t/tstr_ratio"][0] > 0.97 and u["t/tstr_ratio"][0] < 0.9, (t, u)
  assert t["t/tstr_accuracy_real"][0] > t["t/tstr_majority"][0]
  assert "'dysp'" in t["t/tstr_accuracy"][1]         # the last variable is the default target
  ec.target = "smoke"                                 # binary, predicted from its children
  named = synthetic_tabular.evaluate(_context(config, family, params["true"]), "t", ec)
  assert "'smoke'" in named["t/tstr_accuracy"][1]
  ec.target = "nope"
  with pytest.raises(errors.ConfigError, match="unknown synthetic_tabular target column"):
    synthetic_tabular.evaluate(_context(config, family, params["true"]), "t", ec)


def _eight_gaussians(shift: float):
  """A sampler of data.toy2d's 8gaussians (shift 0: the data's own distribution)."""
  angles = jnp.arange(8) * (jnp.pi / 4)
  centers = 4.0 * jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1)

  def sample(params, state, rng, n):
    del params, state
    r_k, r_x = jax.random.split(rng)
    k = jax.random.randint(r_k, (n,), 0, 8)
    x = (centers[k] + 0.5 * jax.random.normal(r_x, (n, 2))) / 1.414
    return x + jnp.asarray([shift, 0.0])
  return types.Family(players=("model",), init=None, loss=None, sample=sample, eval_fn=None)


def test_continuous_rows_from_the_data_distribution_meet_the_floor_and_shifted_ones_do_not():
  config = config_lib.base()
  config.family = "toy"
  config.data.update(name="8gaussians", variant="continuous", batch_size=100)
  ec = ml_collections.ConfigDict(dict(type="synthetic_tabular", num_samples=1500, num_real=1500,
                                      folds=3))
  res = {s: synthetic_tabular.evaluate(_context(config, _eight_gaussians(s), {}), "c", ec)
         for s in (0.0, 2.0)}
  same, moved = res[0.0], res[2.0]
  w0 = same["c/wasserstein_mean_floor"][0]
  assert same["c/wasserstein_mean"][0] < 2.5 * w0 and moved["c/wasserstein_mean"][0] > 0.9
  assert "data units" in same["c/wasserstein_mean"][1]
  assert abs(same["c/discriminator_auroc"][0] - 0.5) < 0.05
  assert abs(same["c/discriminator_auroc_floor"][0] - 0.5) < 0.05
  assert moved["c/discriminator_auroc"][0] > 0.7
  assert same["c/corr_mean_abs"][0] < 0.1 and same["c/corr_frobenius"][0] < 0.15
  assert same["c/tstr"][0] == "not computed" and "no labels" in same["c/tstr"][1]


@pytest.mark.parametrize("key, value, match", [
    ("classifier", "forest", "unknown evals.t.classifier"),
    ("folds", 1, "folds must be an integer >= 2"),
    ("num_samples", 2.5, "num_samples must be an integer"),
])
def test_bad_keys_are_one_line_errors_before_training(key, value, match):
  ec = ml_collections.ConfigDict({"type": "synthetic_tabular", key: value})
  with pytest.raises(errors.ConfigError, match=match) as e:
    synthetic_tabular.check("t", ec, None)
  assert "\n" not in str(e.value)
