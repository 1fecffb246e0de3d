"""Sample-quality metrics between a set of real and a set of generated feature vectors.

Every metric here is computed in a given feature space: the inputs are
`f[N, D]` features (numpy or jax, any float dtype) from some fixed extractor
(raw pixels, a pretrained classifier's penultimate layer, Inception pool3, ...).
Values are only comparable between runs that use the same extractor, the same
preprocessing and the same sample sizes: FD is biased upwards at small n and
the k-NN metrics depend on n and k. Report them with `record`, which stores the
value together with n_real, n_fake and the name of the feature space.

  frechet_distance / fd_from_features  FD between Gaussian fits (Heusel et al.
                                        2017; "FID" when the features are Inception's)
  kid                                  unbiased MMD^2, cubic polynomial kernel
                                        (Binkowski et al. 2018)
  classifier_score                     exp E_x KL(p(y|x) || p(y)) (Salimans et al. 2016)
  precision_recall                     k-NN manifolds (Kynkaanniemi et al. 2019)
  density_coverage                     k-NN balls around real points (Naeem et al. 2020)

Everything runs in float64 numpy on the host: FD subtracts traces of similar
size, and float32 loses most of the digits of a small distance.
"""
from typing import Any, Mapping

import numpy as np
import scipy.linalg
import scipy.special
from sklearn.metrics import pairwise_distances

# Rows of a distance matrix built at once by the k-NN metrics: a chunk is
# [CHUNK, N] float64, 80 MB for N = 10,000.
CHUNK = 1024


def _features(x, name: str, min_rows: int = 1) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2:
    raise ValueError(f"{name} must be f[N, D] (got shape {x.shape})")
  if x.shape[0] < min_rows:
    raise ValueError(f"{name} needs at least {min_rows} rows (got {x.shape[0]})")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} holds NaN or inf")
  return x


def record(values: Mapping[str, Any], *, n_real: int | None, n_fake: int,
           feature_space: str) -> dict:
  """Returns `values` plus the sample sizes and feature space they were computed with.

  e.g. record({"fd": fd_from_features(a, b)}, n_real=len(a), n_fake=len(b),
  feature_space="mnist_classifier_penultimate"). n_real is None for metrics
  without a real set (classifier_score).
  """
  extra = {"n_real": None if n_real is None else int(n_real), "n_fake": int(n_fake),
           "feature_space": str(feature_space)}
  clash = set(values) & set(extra)
  if clash:
    raise ValueError(f"values already hold {sorted(clash)}")
  return {**values, **extra}


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance of features in a given feature space.

  Args:
    feats: f[N, D], N >= 2.

  Returns:
    (mu: f64[D], cov: f64[D, D]), cov with the unbiased 1/(N-1) normalization,
    as in the reference FID code.
  """
  feats = _features(feats, "feats", min_rows=2)
  return feats.mean(axis=0), np.cov(feats, rowvar=False).reshape(feats.shape[1], -1)


def frechet_distance(mu1, cov1, mu2, cov2, eps: float = 1e-6,
                     imag_tol: float = 1e-3) -> float:
  """Frechet (2-Wasserstein^2) distance between N(mu1, cov1) and N(mu2, cov2).

  FD = ||mu1 - mu2||^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^(1/2)), in the
  squared units of the feature space the statistics come from.

  The matrix square root is scipy.linalg.sqrtm in float64. cov1 cov2 is not
  symmetric; its eigenvalues are real and >= 0, but sqrtm may return a complex
  result whose imaginary part is rounding error. That part is dropped if its
  largest magnitude on the diagonal (all the trace uses) is at most
  imag_tol * max(1, largest real diagonal entry), else ValueError. If the
  product is singular enough for sqrtm to return non-finite values (e.g. fewer
  samples than dimensions), both covariances get eps * I added, as in the
  reference FID implementations.

  Args:
    mu1, mu2: f[D] means.
    cov1, cov2: f[D, D] covariances.
    eps: diagonal offset used only when the plain square root is not finite.
    imag_tol: relative tolerance on the dropped imaginary part.

  Returns:
    FD as a Python float (can be slightly negative from rounding when the two
    Gaussians are equal).
  """
  mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
  cov1, cov2 = (np.atleast_2d(np.asarray(c, np.float64)) for c in (cov1, cov2))
  d = mu1.shape[0]
  for name, v, shape in (("mu1", mu1, (d,)), ("mu2", mu2, (d,)),
                         ("cov1", cov1, (d, d)), ("cov2", cov2, (d, d))):
    if v.shape != shape:
      raise ValueError(f"{name} has shape {v.shape}, expected {shape}")
  covmean = scipy.linalg.sqrtm(cov1 @ cov2)
  if not np.all(np.isfinite(covmean)):
    offset = eps * np.eye(d)
    covmean = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
  if np.iscomplexobj(covmean):
    diag = np.diagonal(covmean)
    imag = np.max(np.abs(diag.imag))
    if imag > imag_tol * max(1.0, np.max(np.abs(diag.real))):
      raise ValueError(f"sqrtm(cov1 cov2) has an imaginary part of {imag:.3g} on the diagonal; "
                       f"the covariances are not positive semi-definite or are ill-conditioned")
    covmean = covmean.real
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))


def fd_from_features(a, b) -> float:
  """Frechet distance between Gaussian fits to two feature sets f[N_a, D], f[N_b, D].

  Computed in the feature space of `a` and `b`; biased upwards for finite N
  (the bias shrinks roughly as 1/N), so compare only at equal n_real, n_fake.
  """
  return frechet_distance(*feature_stats(a), *feature_stats(b))


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid(a, b, num_subsets: int, subset_size: int, rng) -> tuple[float, float]:
  """Kernel Inception Distance-style unbiased MMD^2 between two feature sets.

  Kernel k(x, y) = (x . y / D + 1)^3 (Binkowski et al. 2018). For each of
  `num_subsets` draws, m = min(subset_size, N_a, N_b) rows of each set are
  taken without replacement and the unbiased estimator
    sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
      - 2 sum_{i,j} k(x_i, y_j) / m^2
  is computed. Its expectation is 0 when both sets come from one distribution,
  so single estimates can be negative. The paper's defaults: 100 subsets of 1000.

  Args:
    a: f[N_a, D] real features, in a given feature space.
    b: f[N_b, D] generated features, in the same space.
    num_subsets: number of subset draws.
    subset_size: rows per subset and set (capped at min(N_a, N_b), >= 2).
    rng: np.random.Generator or int seed for the subset draws.

  Returns:
    (mean, std) over subsets; std is the spread of single-subset estimates
    (ddof=0, as in the reference code), not the standard error of the mean.
  """
  a, b = _features(a, "a", 2), _features(b, "b", 2)
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"a and b have different feature sizes ({a.shape[1]} vs {b.shape[1]})")
  if num_subsets < 1 or subset_size < 2:
    raise ValueError(f"need num_subsets >= 1 and subset_size >= 2 "
                     f"(got {num_subsets}, {subset_size})")
  gen = np.random.default_rng(rng)
  m = min(subset_size, a.shape[0], b.shape[0])
  mmds = np.empty(num_subsets)
  for s in range(num_subsets):
    x = a[gen.choice(a.shape[0], m, replace=False)]
    y = b[gen.choice(b.shape[0], m, replace=False)]
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    # The diagonals k(x_i, x_i) are what makes the plain V-statistic biased.
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    mmds[s] = within - 2.0 * kxy.mean()
  return float(mmds.mean()), float(mmds.std())


def classifier_score(probs, splits: int = 1) -> tuple[float, float]:
  """exp(E_x KL(p(y|x) || p(y))), the Inception Score computed with any classifier.

  p(y) is the mean of p(y|x) over the (split of the) samples. Between 1 (every
  sample gets the same prediction) and C (confident predictions, balanced
  classes). Only comparable across runs that use the same classifier and n.

  Args:
    probs: f[N, C] class probabilities of N generated samples (rows sum to 1;
      pass softmax outputs, not logits).
    splits: the samples are cut into this many contiguous parts and the score
      computed on each (Salimans et al. use 10 splits of 5000).

  Returns:
    (mean, std) of the score over the splits (std 0 for one split).
  """
  p = _features(probs, "probs")
  if splits < 1 or splits > p.shape[0]:
    raise ValueError(f"splits must be in [1, N={p.shape[0]}] (got {splits})")
  if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
    raise ValueError("probs rows must be probability vectors (non-negative, summing to 1)")
  scores = []
  for part in np.array_split(p, splits):
    marginal = part.mean(axis=0, keepdims=True)
    # rel_entr gives 0 log 0 = 0 for classes a sample puts no mass on.
    kl = scipy.special.rel_entr(part, marginal).sum(axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def _check_pair(real, fake, k: int) -> tuple[np.ndarray, np.ndarray]:
  real, fake = _features(real, "real"), _features(fake, "fake")
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"real and fake have different feature sizes "
                     f"({real.shape[1]} vs {fake.shape[1]})")
  if k < 1:
    raise ValueError(f"k must be >= 1 (got {k})")
  return real, fake


def _kth_neighbour_dist(x: np.ndarray, k: int, chunk: int) -> np.ndarray:
  """Distance from each row of x to its k-th nearest other row: f64[N]."""
  if k >= x.shape[0]:
    raise ValueError(f"k={k} needs more than k rows (got {x.shape[0]})")
  out = np.empty(x.shape[0])
  for i in range(0, x.shape[0], chunk):
    d = pairwise_distances(x[i:i + chunk], x)
    # Sorted, index 0 is the row itself at distance 0, so index k is the k-th other row.
    out[i:i + chunk] = np.partition(d, k, axis=1)[:, k]
  return out


def _balls_containing(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray,
                      chunk: int, strict: bool) -> np.ndarray:
  """Number of balls B(centre_i, radius_i) holding each query: i64[N_queries]."""
  out = np.empty(queries.shape[0], np.int64)
  for i in range(0, queries.shape[0], chunk):
    d = pairwise_distances(queries[i:i + chunk], centres)
    inside = d < radii[None] if strict else d <= radii[None]
    out[i:i + chunk] = inside.sum(axis=1)
  return out


def _nearest_dist(x: np.ndarray, y: np.ndarray, chunk: int) -> np.ndarray:
  """Distance from each row of x to its nearest row of y: f64[N_x]."""
  out = np.empty(x.shape[0])
  for i in range(0, x.shape[0], chunk):
    out[i:i + chunk] = pairwise_distances(x[i:i + chunk], y).min(axis=1)
  return out


def precision_recall(real, fake, k: int = 3, chunk: int = CHUNK) -> dict:
  """Improved precision and recall (Kynkaanniemi et al. 2019) in a given feature space.

  Each set's manifold is the union of balls around its points with radius the
  distance to the point's k-th nearest neighbour in the same set (paper: k=3).
  precision = fraction of fake points inside the real manifold (quality);
  recall = fraction of real points inside the fake manifold (coverage of the
  data). A point on a ball's boundary counts as inside (<=, as in the paper's
  code). Both depend on n_real, n_fake and k: report them with `record`.

  Args:
    real: f[N_real, D] features of real examples, N_real > k.
    fake: f[N_fake, D] features of generated examples, N_fake > k.
    k: neighbour index defining the radii.
    chunk: rows of each distance matrix held in memory at once.

  Returns:
    dict(precision=float, recall=float), each in [0, 1].
  """
  real, fake = _check_pair(real, fake, k)
  real_radii = _kth_neighbour_dist(real, k, chunk)
  fake_radii = _kth_neighbour_dist(fake, k, chunk)
  precision = np.mean(_balls_containing(fake, real, real_radii, chunk, strict=False) > 0)
  recall = np.mean(_balls_containing(real, fake, fake_radii, chunk, strict=False) > 0)
  return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real, fake, k: int = 5, chunk: int = CHUNK) -> dict:
  """Density and coverage (Naeem et al. 2020) in a given feature space.

  Only the real set defines balls: B(r_i, d_k(r_i)), d_k the distance to r_i's
  k-th nearest real neighbour (paper: k=5).
  density = (1 / (k N_fake)) sum_j #{i: f_j in B_i}: about 1 when fake matches
    real, above 1 when fakes crowd dense real regions, unbounded;
  coverage = fraction of real points whose ball holds at least one fake, in
    [0, 1]; about 1 - 2^-k for identical distributions and large n.
  Membership is strict (<), as in the authors' code. Both depend on n_real,
  n_fake and k: report them with `record`.

  Args:
    real: f[N_real, D] features of real examples, N_real > k.
    fake: f[N_fake, D] features of generated examples.
    k: neighbour index defining the radii.
    chunk: rows of each distance matrix held in memory at once.

  Returns:
    dict(density=float, coverage=float).
  """
  real, fake = _check_pair(real, fake, k)
  radii = _kth_neighbour_dist(real, k, chunk)
  density = _balls_containing(fake, real, radii, chunk, strict=True).sum() / (k * fake.shape[0])
  coverage = np.mean(_nearest_dist(real, fake, chunk) < radii)
  return {"density": float(density), "coverage": float(coverage)}
