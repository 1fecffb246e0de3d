"""Fidelity and utility of synthetic tables: marginals, pairs, 1-D distances, TSTR.

Discrete tables (`x: i[N, V]`, column v in [0, card_v)):
  marginal_tv   total-variation distance 1/2 sum_x |p_v(x) - q_v(x)| between
                the empirical marginals of each column: f64[V], in [0, 1]
  pairwise_tv   the same for the joint of every pair of columns (u, v):
                f64[V, V], in [0, 1]; one matmul of one-hot tables gives every
                pair's contingency table at once
Continuous tables (`x: f[N, D]`, images flattened):
  wasserstein_1d        per-feature W1 = integral |F(t) - G(t)| dt of the
                        empirical CDFs, exact for samples of any sizes
                        (scipy.stats.wasserstein_distance, vectorised)
  correlation           Pearson correlation matrix, a constant feature having
                        correlation 0 with every other (1 with itself)
  correlation_difference  Frobenius norm and mean |.| of off-diagonal entries
                        of the difference of two correlation matrices
  discriminator_auroc   AUROC of a cross-validated logistic regression that
                        tells rows of `b` from rows of `a` (0.5:
                        indistinguishable to a linear classifier)
Both:
  classifier_accuracy   test accuracy of a scikit-learn classifier fitted on
                        (x, y), for train-on-synthetic / test-on-real (TSTR,
                        Esteban et al. 2017; CAS, Ravuri & Vinyals 2019)
Every estimate is empirical: two samples of one distribution score above 0
(an AUROC of 0.5 plus noise), so results are read against the same metric
between two real samples of the same sizes.
"""
import contextlib

import numpy as np

CLASSIFIERS = ("logistic", "tree")


def _one_blas_thread():
  """One BLAS / OpenMP thread for these small fits: threads gain little on them and, with
  the cores shared (JAX's own threads, other jobs), can thrash."""
  try:
    import threadpoolctl  # pylint: disable=g-import-not-at-top  (a scikit-learn dependency)
  except ImportError:
    return contextlib.nullcontext()
  return threadpoolctl.threadpool_limits(1)


def _offsets(cards) -> np.ndarray:
  """Start of each column's block in a one-hot row: i64[V]."""
  return np.concatenate([[0], np.cumsum(np.asarray(cards, np.int64))[:-1]])


def one_hot(x: np.ndarray, cards) -> np.ndarray:
  """i[N, V] states -> f32[N, sum(cards)] one-hot blocks, column v's block of width card_v.

  Raises ValueError for a state outside [0, card_v).
  """
  x = np.asarray(x, np.int64)
  cards = np.asarray(cards, np.int64)
  if x.ndim != 2 or x.shape[1] != len(cards):
    raise ValueError(f"table of shape {x.shape} does not have {len(cards)} columns")
  if x.size and (x.min() < 0 or (x >= cards).any()):
    raise ValueError("table holds a state outside [0, card) of its column")
  out = np.zeros((x.shape[0], int(cards.sum())), np.float32)
  out[np.arange(x.shape[0])[:, None], x + _offsets(cards)] = 1.0
  return out


def _block_sums(m: np.ndarray, offsets: np.ndarray, axes: tuple) -> np.ndarray:
  for axis in axes:
    m = np.add.reduceat(m, offsets, axis=axis)
  return m


def marginal_tv(a: np.ndarray, b: np.ndarray, cards) -> np.ndarray:
  """Per-column TV distance of the empirical marginals of tables a: i[N, V] and b: i[M, V].

  Returns f64[V] in [0, 1]: 0 for equal frequencies, 1 for disjoint supports.
  """
  p = one_hot(a, cards).astype(np.float64).mean(0)
  q = one_hot(b, cards).astype(np.float64).mean(0)
  return 0.5 * _block_sums(np.abs(p - q), _offsets(cards), (0,))


def pairwise_tv(a: np.ndarray, b: np.ndarray, cards) -> np.ndarray:
  """TV distance of the empirical joint of every column pair: f64[V, V], symmetric.

  Entry (u, v) is 1/2 sum_{x_u, x_v} |p(x_u, x_v) - q(x_u, x_v)|; the
  diagonal is `marginal_tv`. The contingency tables of all pairs are the
  blocks of onehot(a)^T onehot(a) / N (counts exact in float32 below 2^24 rows).
  """
  ha, hb = one_hot(a, cards), one_hot(b, cards)
  joint_a = (ha.T @ ha).astype(np.float64) / len(ha)
  joint_b = (hb.T @ hb).astype(np.float64) / len(hb)
  return 0.5 * _block_sums(np.abs(joint_a - joint_b), _offsets(cards), (0, 1))


def mean_over_pairs(m: np.ndarray) -> float:
  """Mean of the strictly upper triangle of a square f[V, V] (V >= 2)."""
  iu = np.triu_indices(m.shape[0], k=1)
  return float(m[iu].mean())


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Per-feature 1-Wasserstein distance of the empirical distributions: f64[D].

  a: f[N, D], b: f[M, D] (any N, M >= 1). W1 = sum_k |F_a(t_k) - F_b(t_k)|
  (t_{k+1} - t_k) over the sorted union t of both samples, F the right-
  continuous empirical CDFs, which is exactly scipy.stats.wasserstein_distance
  per column. Between tied values the width is 0, so counting the tied points
  in sorted order gives the same sum as counting all values <= t_k.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  both = np.concatenate([a, b], axis=0)                 # [N + M, D]
  order = np.argsort(both, axis=0, kind="stable")
  t = np.take_along_axis(both, order, axis=0)
  from_a = order < len(a)
  cdf_a = np.cumsum(from_a, axis=0) / len(a)
  cdf_b = np.cumsum(~from_a, axis=0) / len(b)
  return np.sum(np.abs(cdf_a - cdf_b)[:-1] * np.diff(t, axis=0), axis=0)


def correlation(x: np.ndarray) -> np.ndarray:
  """Pearson correlation matrix f64[D, D] of rows x: f[N, D].

  A constant feature (zero variance, e.g. an always-black border pixel) has no
  correlation; it is set to 0 off the diagonal and 1 on it, so two tables with
  the same constant feature agree there.
  """
  x = np.asarray(x, np.float64)
  xc = x - x.mean(0)
  std = np.sqrt((xc * xc).mean(0))
  live = std > 0
  z = np.where(live, xc / np.where(live, std, 1.0), 0.0)
  c = z.T @ z / len(x)
  np.fill_diagonal(c, 1.0)
  return np.clip(c, -1.0, 1.0)


def correlation_difference(a: np.ndarray, b: np.ndarray) -> dict:
  """How far the correlation structures of a: f[N, D] and b: f[M, D] differ.

  Returns {"frobenius": ||C_a - C_b||_F (all D^2 entries; the diagonal is 0),
  "mean_abs": mean |C_a - C_b| over the D (D - 1) / 2 pairs}.
  """
  d = correlation(a) - correlation(b)
  return {"frobenius": float(np.sqrt(np.sum(d * d))), "mean_abs": mean_over_pairs(np.abs(d))}


def discriminator_auroc(a: np.ndarray, b: np.ndarray, folds: int = 5, seed: int = 0) -> float:
  """AUROC of telling rows of b (positives) from rows of a, out of fold.

  a: f[N, D], b: f[M, D]. A standardized logistic regression is fitted on
  `folds` - 1 stratified folds of the pooled rows and scores the held-out fold;
  the AUROC (sklearn.metrics.roc_auc_score) is over all out-of-fold scores.
  0.5: a linear classifier cannot tell the tables apart (values below 0.5
  are noise around it); 1: perfectly separable.
  """
  from sklearn import linear_model, metrics, model_selection, pipeline, preprocessing  # pylint: disable=g-import-not-at-top
  x = np.concatenate([a, b]).astype(np.float64)
  y = np.concatenate([np.zeros(len(a), np.int64), np.ones(len(b), np.int64)])
  model = pipeline.make_pipeline(preprocessing.StandardScaler(),
                                 linear_model.LogisticRegression(max_iter=1000))
  cv = model_selection.StratifiedKFold(folds, shuffle=True, random_state=seed)
  with _one_blas_thread():
    scores = model_selection.cross_val_predict(model, x, y, cv=cv, method="decision_function")
  return float(metrics.roc_auc_score(y, scores))


def classifier_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                        y_test: np.ndarray, classifier: str = "logistic", seed: int = 0) -> float:
  """Test accuracy of a classifier fitted on (x_train, y_train), in [0, 1].

  x: f[N, F] features (one-hot blocks for discrete tables; standardize
  continuous ones first), y: i[N] classes. "logistic": multinomial logistic
  regression on the features as given (lbfgs, L2 with C=1); "tree": a CART
  decision tree (min 5 rows per leaf, seeded). Both are deterministic. A
  training set with a single class predicts that class.
  """
  from sklearn import linear_model, tree  # pylint: disable=g-import-not-at-top
  if classifier not in CLASSIFIERS:
    raise ValueError(f"unknown classifier {classifier!r}; valid: {', '.join(CLASSIFIERS)}")
  y_train, y_test = np.asarray(y_train), np.asarray(y_test)
  classes = np.unique(y_train)
  if len(classes) == 1:
    return float(np.mean(y_test == classes[0]))
  if classifier == "logistic":
    model = linear_model.LogisticRegression(max_iter=1000)
  else:
    model = tree.DecisionTreeClassifier(min_samples_leaf=5, random_state=seed)
  with _one_blas_thread():
    model.fit(np.asarray(x_train, np.float64), y_train)
    predicted = model.predict(np.asarray(x_test, np.float64))
  return float(np.mean(predicted == y_test))


def majority_accuracy(y_train: np.ndarray, y_test: np.ndarray) -> float:
  """Accuracy on y_test of always predicting y_train's most frequent class."""
  values, counts = np.unique(np.asarray(y_train), return_counts=True)
  return float(np.mean(np.asarray(y_test) == values[np.argmax(counts)]))
