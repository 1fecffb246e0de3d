"""Sample-quality metrics against closed forms and constructed cases; exact mode counts."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.data import toy2d
from gen_jax.metrics import modes
from gen_jax.metrics import sample_quality as sq


def _rotation(d, seed=0):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
  return q


def test_fd_matches_closed_form_for_commuting_covariances():
  # Same eigenvectors: FD = ||mu1 - mu2||^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2.
  q = _rotation(4)
  s1, s2 = np.array([4.0, 1.0, 0.25, 2.0]), np.array([1.0, 1.0, 1.0, 0.5])
  mu1, mu2 = np.array([1.0, 0.0, -1.0, 2.0]), np.array([0.0, 0.5, -1.0, 0.0])
  want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
  got = sq.frechet_distance(mu1, (q * s1) @ q.T, mu2, (q * s2) @ q.T)
  np.testing.assert_allclose(got, want, rtol=1e-9)
  np.testing.assert_allclose(sq.frechet_distance(0.0, 4.0, 3.0, 1.0), 9.0 + 1.0, rtol=1e-12)


def test_fd_matches_symmetric_square_root_for_general_covariances():
  # tr (C1 C2)^(1/2) = tr (C1^(1/2) C2 C1^(1/2))^(1/2), computed with eigh only.
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(2, 5, 5))
  c1, c2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)

  def psd_sqrt(m):
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

  r1 = psd_sqrt(c1)
  want = np.trace(c1) + np.trace(c2) - 2 * np.trace(psd_sqrt(r1 @ c2 @ r1)) + 1.0
  got = sq.frechet_distance(np.zeros(5), c1, np.eye(5)[0], c2)
  np.testing.assert_allclose(got, want, rtol=1e-8)


def test_fd_rejects_covariances_that_are_not_psd():
  with pytest.raises(ValueError, match="imaginary"):
    sq.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2))


def test_fd_between_samples_of_one_distribution_shrinks_with_n():
  rng = np.random.default_rng(2)
  mix = _rotation(4, seed=3) * np.array([2.0, 1.0, 0.5, 0.3])

  def mean_fd(n):
    return np.mean([sq.fd_from_features(rng.normal(size=(n, 4)) @ mix,
                                        rng.normal(size=(n, 4)) @ mix) for _ in range(4)])

  small, large = mean_fd(500), mean_fd(5000)
  assert large < small / 3, (small, large)          # the bias falls roughly as 1/n
  assert large < 0.02, large


def test_feature_stats_uses_the_unbiased_covariance():
  mu, cov = sq.feature_stats(jnp.array([[0.0, 1.0], [2.0, 1.0]]))
  np.testing.assert_allclose(mu, [1.0, 1.0])
  np.testing.assert_allclose(cov, [[2.0, 0.0], [0.0, 0.0]])    # 1/(N-1), not 1/N
  assert mu.dtype == cov.dtype == np.float64


def test_kid_estimator_matches_brute_force_unbiased_mmd():
  rng = np.random.default_rng(4)
  a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 0.3
  k = lambda x, y: (x @ y / 3 + 1) ** 3
  m = 6
  xx = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  xy = sum(k(a[i], b[j]) for i in range(m) for j in range(m)) / m**2
  # A subset of all 6 rows is a permutation, which the estimator does not see.
  mean, std = sq.kid(a, b, num_subsets=3, subset_size=10, rng=0)
  np.testing.assert_allclose(mean, xx + yy - 2 * xy, rtol=1e-10)
  assert std < 1e-10


def test_kid_is_zero_in_expectation_for_one_distribution():
  rng = np.random.default_rng(5)
  unbiased, biased = [], []
  for _ in range(300):
    a, b = rng.normal(size=(2, 20, 2))
    unbiased.append(sq.kid(a, b, 1, 20, rng)[0])
    kxx, kyy, kxy = ((u @ v.T / 2 + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))
    biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
  se = np.std(unbiased) / np.sqrt(len(unbiased))
  assert abs(np.mean(unbiased)) < 3 * se, (np.mean(unbiased), se)
  assert np.mean(biased) > 10 * se                   # the V-statistic would fail the check


def test_kid_separates_shifted_distributions():
  rng = np.random.default_rng(6)
  a, b = rng.normal(size=(2, 800, 4))
  same_mean, _ = sq.kid(a, b, 20, 400, np.random.default_rng(0))
  shift_mean, shift_std = sq.kid(a, b + 0.5, 20, 400, np.random.default_rng(0))
  assert shift_mean > 5 * shift_std, (shift_mean, shift_std)
  assert abs(same_mean) < 0.05 * shift_mean, (same_mean, shift_mean)


def test_classifier_score_on_constructed_predictions():
  eye = np.eye(10)
  np.testing.assert_allclose(sq.classifier_score(np.tile(eye, (5, 1)))[0], 10.0, rtol=1e-12)
  np.testing.assert_allclose(sq.classifier_score(np.full((50, 10), 0.1))[0], 1.0, rtol=1e-12)
  np.testing.assert_allclose(sq.classifier_score(np.tile(eye[3], (50, 1)))[0], 1.0, rtol=1e-12)
  # Split 1: all class 0 (score 1); split 2: balanced over 4 classes (score 4).
  probs = np.concatenate([np.tile(eye[0], (8, 1)), np.tile(eye[:4], (2, 1))])
  mean, std = sq.classifier_score(jnp.asarray(probs, jnp.float32), splits=2)
  np.testing.assert_allclose([mean, std], [2.5, 1.5], rtol=1e-6)
  with pytest.raises(ValueError, match="probability"):
    sq.classifier_score(np.full((4, 3), 2.0))


def test_knn_metrics_on_a_hand_built_1d_case():
  real = np.array([[0.0], [1.0], [2.0], [3.0]])
  fake = np.array([[0.5], [10.0]])
  # k=1: real radii 1; fake radii 9.5. 0.5 lies in the balls of 0 and 1; 10 in none.
  assert sq.precision_recall(real, fake, k=1) == {"precision": 0.5, "recall": 1.0}
  # density = 2 balls / (k * 2 fakes); coverage: real 0 and 1 have a fake within 1.
  assert sq.density_coverage(real, fake, k=1) == {"density": 1.0, "coverage": 0.5}


def test_knn_metrics_for_same_shifted_and_dropped_modes():
  rng = np.random.default_rng(7)
  real, fake = rng.normal(size=(2, 600, 3))
  pr, dc = sq.precision_recall(real, fake, chunk=256), sq.density_coverage(real, fake, chunk=256)
  assert min(pr.values()) > 0.9 and dc["coverage"] > 0.9, (pr, dc)
  assert 0.85 < dc["density"] < 1.15, dc
  far = fake + 20.0
  assert sq.precision_recall(real, far) == {"precision": 0.0, "recall": 0.0}
  assert sq.density_coverage(real, far) == {"density": 0.0, "coverage": 0.0}
  # Real has two blobs, fake only one: quality stays high, recall and coverage halve.
  two = np.concatenate([real[:300], real[300:] + 20.0])
  pr, dc = sq.precision_recall(two, fake[:300]), sq.density_coverage(two, fake[:300])
  assert pr["precision"] > 0.9 and 0.4 < pr["recall"] < 0.55, pr
  assert 0.4 < dc["coverage"] < 0.55, dc


def test_record_keeps_sample_sizes_and_feature_space():
  out = sq.record({"fd": 1.5}, n_real=10, n_fake=20, feature_space="pixels")
  assert out == {"fd": 1.5, "n_real": 10, "n_fake": 20, "feature_space": "pixels"}
  with pytest.raises(ValueError, match="n_real"):
    sq.record({"n_real": 3}, n_real=10, n_fake=20, feature_space="pixels")


def test_ring_and_grid_centres():
  ring = toy2d.ring_modes()
  np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0)
  np.testing.assert_allclose(ring[[0, 2, 4]], [[2, 0], [0, 2], [-2, 0]], atol=1e-12)
  grid = toy2d.grid_modes()
  assert grid.shape == (25, 2)
  assert {tuple(p) for p in grid} == {(x, y) for x in range(-4, 5, 2) for y in range(-4, 5, 2)}


def test_mode_stats_exact_on_placed_samples():
  centres = toy2d.grid_modes()
  std = toy2d.GRID_STD
  kept = np.delete(centres, 7, axis=0)                           # mode 7 gets nothing
  exact = np.repeat(kept, 10, axis=0)                            # 240 high quality
  offset = np.array([0.0, 4.0 * std])                            # outside 3 std
  near_miss = np.repeat(centres[7:8] + offset, 30, axis=0)
  junk = np.full((30, 2), 50.0)
  boundary = centres[:2] + np.array([[2.9 * std, 0.0], [0.0, -3.1 * std]])
  samples = np.concatenate([exact, near_miss, junk, boundary])   # 302 samples
  out = modes.mode_stats(jnp.asarray(samples), centres, std)
  assert out["modes_covered"] == 24
  assert out["high_quality_fraction"] == 241 / 302
  want = np.full(25, 10)
  want[7], want[0] = 0, 11
  np.testing.assert_array_equal(out["counts"], want)
  assert modes.mode_stats(samples, centres, std, min_count=11)["modes_covered"] == 1
  assert modes.mode_stats(samples, centres, std, threshold=5.0)["modes_covered"] == 25


def test_sampled_mixture_covers_every_mode_with_the_gaussian_fraction_inside_3_std():
  centres = toy2d.grid_modes()
  x = modes.sample_mixture(jax.random.key(0), centres, toy2d.GRID_STD, 20_000)
  assert x.shape == (20_000, 2) and x.dtype == jnp.float32
  out = modes.mode_stats(x, centres, toy2d.GRID_STD)
  assert out["modes_covered"] == 25
  # In 2-D, P(||z|| < 3) = 1 - exp(-9/2) for z ~ N(0, I).
  np.testing.assert_allclose(out["high_quality_fraction"], 1 - math.exp(-4.5), atol=3e-3)
  assert out["counts"].min() > 650 and out["counts"].max() < 950, out["counts"]


def test_stacked_mnist_mode_counts():
  combos = np.array([(a, b, c) for a in range(10) for b in range(10) for c in range(10)])
  out = modes.stacked_mnist_modes(combos.astype(np.float32))
  assert out["modes_covered"] == 1000
  np.testing.assert_allclose(out["kl_to_uniform"], 0.0, atol=1e-12)

  ten = np.repeat(combos[::100][:10], 5, axis=0)                 # 10 modes, 5 samples each
  out = modes.stacked_mnist_modes(jnp.asarray(ten, jnp.int32))
  assert out["modes_covered"] == 10
  np.testing.assert_allclose(out["kl_to_uniform"], math.log(100.0), rtol=1e-12)
  assert out["counts"][100] == 5 and out["counts"][1] == 0
  assert modes.stacked_mnist_modes(np.array([[1, 2, 3]]))["counts"][123] == 1
  assert modes.stacked_mnist_modes(ten, min_count=6)["modes_covered"] == 0
  with pytest.raises(ValueError):
    modes.stacked_mnist_modes(np.array([[1, 2, 10]]))
  with pytest.raises(ValueError):
    modes.stacked_mnist_modes(np.array([[1.5, 2, 3]]))


def test_class_balance_kl():
  out = modes.class_balance(np.array([0, 0, 0, 0, 1, 1, 2, 2]), num_classes=4)
  np.testing.assert_array_equal(out["histogram"], [4, 2, 2, 0])
  # p = (1/2, 1/4, 1/4, 0): KL to U_4 = 1/2 ln 2 + 1/4 ln 1 + 1/4 ln 1.
  np.testing.assert_allclose(out["kl_to_uniform"], 0.5 * math.log(2.0), rtol=1e-12)
  np.testing.assert_allclose(modes.class_balance(np.arange(6) % 3, 3)["kl_to_uniform"], 0.0)
  np.testing.assert_allclose(modes.class_balance(np.zeros(5), 7)["kl_to_uniform"], math.log(7))
