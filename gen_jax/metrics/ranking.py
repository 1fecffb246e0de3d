"""Ranking metrics of anomaly scores: AUROC (with its standard error) and average precision.

Convention: a higher score means more anomalous, and label 1 marks the
anomalies (the positives). Scores are compared as numbers only, so any
monotone transform of a score (a constant shift of -log p(x) by log Z, a
change of units) leaves every metric here unchanged. Host-side numpy: the
inputs are one score per test example.
"""
import numpy as np

from gen_jax import errors


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
  """(scores f64[N], labels bool[N]) after one-line checks of shape, values and classes."""
  s = np.asarray(scores, np.float64).reshape(-1)
  y = np.asarray(labels).reshape(-1)
  if s.shape != y.shape:
    raise errors.ConfigError(f"scores and labels differ in length ({len(s)} vs {len(y)})")
  if not np.isin(y, (0, 1)).all():
    raise errors.ConfigError("labels must be 0 (normal) or 1 (anomaly)")
  if not np.isfinite(s).all():
    raise errors.DataError(f"{int((~np.isfinite(s)).sum())} of {len(s)} anomaly scores are not "
                           f"finite; a model gave them NaN or inf")
  y = y.astype(bool)
  if y.all() or not y.any():
    raise errors.ConfigError(f"AUROC needs both normal and anomalous examples (got {int(y.sum())} "
                             f"anomalies of {len(y)})")
  return s, y


def average_ranks(x) -> np.ndarray:
  """1-based ranks of x (f[N]) in increasing order, ties given the mean of their ranks: f64[N]."""
  x = np.asarray(x).reshape(-1)
  order = np.argsort(x, kind="stable")
  xs = x[order]
  first = np.r_[True, xs[1:] != xs[:-1]]              # the start of each run of equal values
  group = np.cumsum(first) - 1
  starts = np.flatnonzero(first)
  ends = np.r_[starts[1:], len(x)]                   # exclusive
  mean_rank = (starts + 1 + ends) / 2.0              # mean of the ranks starts+1 .. ends
  ranks = np.empty(len(x), np.float64)
  ranks[order] = mean_rank[group]
  return ranks


def auroc(scores, labels) -> float:
  """Area under the ROC curve: P(s_anomaly > s_normal) + P(tie) / 2, in [0, 1].

  The Mann-Whitney statistic from average ranks (ties count one half), which
  equals the trapezoidal area under the ROC curve.

  Args:
    scores: f[N], higher = more anomalous.
    labels: {0, 1}[N], 1 = anomaly.
  """
  s, y = _check(scores, labels)
  r = average_ranks(s)
  n1, n0 = float(y.sum()), float((~y).sum())
  return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auroc_se(auc: float, n_pos: int, n_neg: int) -> float:
  """Standard error of an AUROC estimate (Hanley & McNeil 1982, Radiology 143, eq. 2).

  sqrt((A(1-A) + (n1-1)(Q1-A^2) + (n0-1)(Q2-A^2)) / (n1 n0)) with Q1 = A/(2-A),
  Q2 = 2A^2/(1+A); at A = 1/2 it is the exact null value sqrt((n1+n0+1)/(12 n1 n0)).
  """
  a, n1, n0 = float(auc), float(n_pos), float(n_neg)
  q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
  var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
  return float(np.sqrt(max(var, 0.0)))


def average_precision(scores, labels) -> float:
  """Average precision: sum_k (R_k - R_{k-1}) P_k over the distinct score thresholds, in [0, 1].

  Thresholds run from the highest score down; examples with equal scores are
  admitted together (scikit-learn's `average_precision_score`, no
  interpolation). Its chance level is the anomaly fraction, not 1/2.
  """
  s, y = _check(scores, labels)
  order = np.argsort(-s, kind="stable")
  s, y = s[order], y[order]
  last = np.r_[s[1:] != s[:-1], True]                # the end of each run of equal scores
  tp = np.cumsum(y)[last].astype(np.float64)
  seen = (np.flatnonzero(last) + 1).astype(np.float64)
  precision, recall = tp / seen, tp / tp[-1]
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
