"""Gaussian mixtures on scikit-learn's 8x8 digits by EM (embedded data, no files).

Command:  python -m gen_jax.main --config experiments/gmm_digits.py[:variant] --workdir runs/gmm_digits
Hardware: 2 CPU cores, seconds (the whole 1,500-image train split is one batch;
          one step is one EM iteration).
Target:   scikit-learn's GaussianMixture on the same rows and preprocessing
          (pixels / 255, i.e. 0..16 gray levels rescaled, rounded; reg_covar
          1e-6 on the full covariance, k-means++ init): test log-likelihood per
          digit in nats, an exact density of the 64 continuous pixel values.
          Constant-zero pixels make full-covariance densities depend on
          reg_covar, so numbers are comparable only at the same reg_covar.
          scikit-learn on these rows (test nats per digit, 3 seeds, tol 1e-6):
          full K=10 96.37 / 96.09 / 97.71 (init kmeans), 94.77 / 94.45 /
          89.52 (k-means++); diag K=10 105.71 / 106.70 / 102.34 (kmeans),
          103.75 / 99.23 / 96.23 (k-means++); diag K=20 110.02 / 96.09 /
          93.51 (kmeans), 113.14 / 89.90 / 109.22 (k-means++). The spread
          across seeds (local optima) is larger than any implementation
          difference; from the same start both reach the same optimum
          (benchmarks/bench_gmm.py).
          Synthetic digits (synth/*, evaluator synthetic_tabular): 1,500 samples against
          the 297 test digits as 64-pixel rows: per-pixel Wasserstein-1, correlation-matrix
          difference and a logistic-regression real-vs-synthetic AUROC, each beside its
          floor (1,500 real training digits in place of the samples). Measured, K=10 full
          (seed 0): wasserstein_mean 0.046 (floor 0.030), corr_mean_abs 0.080 (0.053),
          discriminator_auroc 0.974 (0.642); a floor above 0.5 means the test digits are
          not exchangeable with the training ones, even for a linear classifier.
Variants: "" (K=10, full covariance), "diag" (K=10, diagonal), "k20_diag",
          "diag_floor" (diag with reg_covar 1e-3), "sgd" (the diag_floor
          model fitted by Adam on the same log-likelihood instead of EM; with
          reg_covar 1e-6 Adam is unstable on the near-constant pixels),
          "smoke" (seconds; used by the tests).
"""
from gen_jax import config_lib, optim

VARIANTS = ("diag", "k20_diag", "diag_floor", "sgd", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "gmm"
  c.trainer = "em"
  c.model = dict(num_components=10, covariance="full", reg_covar=1e-6, init="kmeans++",
                 kmeans_iters=10, min_count=1e-6)
  c.data.update(name="digits", variant="grayscale", batch_size=0)
  c.x64 = True
  c.em.update(tol=1e-6, decrease_tol=1e-6)
  c.total_steps = 500
  c.log_every_steps = 10
  c.ckpt_every_steps = 100
  c.num_samples = 64
  c.evals = dict(test_ll=dict(type="likelihood", batch_size=297, num_examples=0),
                 synth=dict(type="synthetic_tabular", num_samples=1500, folds=5))
  c.reference = dict(metric="test_ll/log_px", value=0.0,
                     source="scikit-learn GaussianMixture, same data and init (measured)")
  if variant in ("diag", "diag_floor", "sgd"):
    c.model.covariance = "diag"
  if variant in ("diag_floor", "sgd"):
    c.model.reg_covar = 1e-3
  if variant == "k20_diag":
    c.model.update(num_components=20, covariance="diag")
  if variant == "sgd":
    c.trainer = "sgd"
    c.data.batch_size = 100
    c.x64 = False
    c.optim.model = optim.adam(1e-2)
    c.total_steps = 6000
    c.log_every_steps = 500
    c.ckpt_every_steps = 3000
  if variant == "smoke":
    c.model.update(num_components=3, covariance="diag", kmeans_iters=2)
    c.em.tol = 0.0
    c.total_steps = 4
    c.log_every_steps = 2
    c.ckpt_every_steps = 2
    c.num_samples = 16
    c.evals.synth.update(num_samples=300, folds=3)
  return c
