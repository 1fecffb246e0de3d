"""The restoration, class-balance and labelled-interpolation evaluators.

A VAE smoke model (untrained parameters: these are tests of the pipeline and of
its numbers, not of the model) gives the Context; every reported number is
recomputed here from scikit-image, SciPy or by hand on the same images.
"""
import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import experiment, xla_optimizations
from PIL import Image
from scipy import ndimage
from skimage import metrics as skm

from gen_jax import config_lib, errors
from gen_jax.data import corruptions, sources
from gen_jax.evaluators import class_balance, grids, restoration
from gen_jax.trainers import loop

pytestmark = pytest.mark.usefixtures("cheap_compiles")   # tiny models: compiling is the cost


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
  """The evaluator Context of a fresh (untrained) VAE smoke model on digits."""
  config = config_lib.load_config(experiment("vae_mnist.py") + ":smoke")
  run = loop.setup(config, str(tmp_path_factory.mktemp("vae")))
  ts = loop.init_or_restore(run)
  yield loop.eval_context(run, ts, None)
  run.close()


@pytest.fixture(scope="module")
def classifier_ec():
  """Classifier keys of the digits smoke classifier the GAN smoke uses (its temp-folder
  workdir), trained first when missing. Any classifier serves: every number is recomputed
  from its predictions."""
  q = config_lib.load_config(experiment("dcgan_mnist.py") + ":smoke").evals.quality
  ec = ml_collections.ConfigDict({k: q[k] for k in (
      "classifier_config", "classifier_workdir", "classifier_name", "train_missing")})
  ec.batch_size = 297
  # 100 conv steps: compute-bound, so XLA's optimizations pay for themselves here.
  with xla_optimizations(True):
    loop.train_prerequisites(ml_collections.ConfigDict(
        dict(evals=dict(q=dict(type="sample_quality", **ec)))))
  return ec


def _ec(**kw):
  return ml_collections.ConfigDict(kw)


def _sk_psnr(x, y):
  return np.array([skm.peak_signal_noise_ratio(a, b, data_range=1.0)
                   for a, b in zip(np.float64(x), np.float64(y), strict=True)])


def _sk_ssim(x, y):
  return np.array([skm.structural_similarity(a[..., 0], b[..., 0], data_range=1.0)
                   for a, b in zip(np.float64(x), np.float64(y), strict=True)])


def _check_mean_sem(results, key, per_image):
  n = len(per_image)
  np.testing.assert_allclose(results[key][0], per_image.mean(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(results[key + "_sem"][0], per_image.std() / math.sqrt(n),
                             rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# restoration


def test_denoising_numbers_are_scikit_image_on_the_same_images(ctx):
  ec = _ec(type="restoration", kind="gaussian", levels=(0.1, 0.3), num_examples=12,
           batch_size=5, grid_images=3)     # 12 = 5 + 5 + 2: the padded last batch is cut
  res = restoration.evaluate(ctx, "den", ec)
  x, where = restoration.clean_images(ctx, "den", ec)
  # The clean images are the fixed binarization of the first 12 test digits.
  assert x.shape == (12, 8, 8, 1) and set(np.unique(x)) <= {0.0, 1.0}
  assert "digits:test" in where
  family, params, state = ctx.family, ctx.params, ctx.state
  for level in (0.1, 0.3):
    tag = f"den/gaussian_{level:g}"
    noisy = np.asarray(corruptions.corrupt("gaussian", jnp.asarray(x),
                                           ctx.key("den", "gaussian", f"{level:g}"), level))
    median = np.stack([ndimage.median_filter(img[..., 0], size=3) for img in noisy])[..., None]
    model = np.concatenate([np.asarray(family.decode(params, state, family.encode(
        params, state, noisy[i:i + 1]))) for i in range(len(noisy))])
    for method, y in (("input", noisy), ("median", median), ("model", model)):
      _check_mean_sem(res, f"{tag}/{method}_psnr", _sk_psnr(x, y))
      _check_mean_sem(res, f"{tag}/{method}_ssim", _sk_ssim(x, y))
      assert res[f"{tag}/{method}_psnr"][1].startswith("dB, mean over 12 images of digits:test")
  # More noise, lower input PSNR; sigma 0.1 on binary images is ~20 dB (clipping lowers MSE).
  assert res["den/gaussian_0.1/input_psnr"][0] > res["den/gaussian_0.3/input_psnr"][0] + 5
  path = res["den/png"][0]
  assert os.path.isfile(path) and path.startswith(ctx.workdir)
  # Per level four rows (clean, corrupted, median, model) of 3 images, 64-px tiles.
  assert Image.open(path).size == (110 + 3 * 68, 36 + 8 * 68)


def test_super_resolution_scores_the_bicubic_baseline_and_no_median(ctx):
  ec = _ec(type="restoration", kind="downsample", levels=(2, 4), num_examples=7,
           batch_size=7)
  res = restoration.evaluate(ctx, "sr", ec)
  x, _ = restoration.clean_images(ctx, "sr", ec)
  assert not any("median" in k for k in res)
  for k in (2, 4):
    low = x.reshape(7, 8 // k, k, 8 // k, k, 1).mean(axis=(2, 4))          # area downsampling
    bicubic = np.clip(np.asarray(jax.image.resize(low, (7, 8, 8, 1), "bicubic")), 0, 1)
    _check_mean_sem(res, f"sr/downsample_{k}/input_psnr", _sk_psnr(x, bicubic))
    _check_mean_sem(res, f"sr/downsample_{k}/input_ssim", _sk_ssim(x, bicubic))
    assert "bicubic" in res[f"sr/downsample_{k}/input_psnr"][1]
  assert res["sr/downsample_2/input_psnr"][0] > res["sr/downsample_4/input_psnr"][0]


def test_family_without_encoder_or_decoder_is_refused_in_one_line(ctx):
  no_enc = dataclasses.replace(ctx, family=dataclasses.replace(ctx.family, encode=None))
  ec = _ec(type="restoration", kind="gaussian", levels=(0.1,), batch_size=4)
  with pytest.raises(errors.ConfigError,
                     match=r"^evaluator 'restoration' needs an encoder and a decoder; this "
                           r"family has no Family.encode$"):
    restoration.evaluate(no_enc, "r", ec)
  neither = dataclasses.replace(no_enc, family=dataclasses.replace(no_enc.family, decode=None))
  with pytest.raises(errors.ConfigError, match="no Family.encode and no Family.decode$"):
    restoration.evaluate(neither, "r", ec)


@pytest.mark.parametrize("keys,match", [
    (dict(kind="blur", levels=(1,)), "unknown evals.r.kind 'blur'; valid choices"),
    (dict(kind="downsample", levels=(1.5,)), "evals.r.levels: .*integer factor"),
    (dict(kind="masking", levels=(1.2,)), "evals.r.levels: .*probability in"),
    (dict(kind="gaussian", levels=()), "evals.r.levels must list at least one"),
    (dict(kind="gaussian", levels=(0.1,), batch_size=0), "batch_size must be an integer"),
])
def test_bad_restoration_configs_fail_before_training(keys, match):
  ec = _ec(type="restoration", batch_size=4)
  ec.update(keys)
  with pytest.raises(errors.ConfigError, match=match):
    restoration.check("r", ec, None)


# ---------------------------------------------------------------------------------------------
# class balance


def test_balance_stats_by_hand():
  s = class_balance.balance_stats(np.array([0, 0, 0, 0, 1, 1, 2, 2]), 4)
  np.testing.assert_array_equal(s["histogram"], [4, 2, 2, 0])
  # p = (1/2, 1/4, 1/4, 0): KL = 1/2 ln(4/2) + 2 * 1/4 ln(4/4) = ln(2) / 2.
  np.testing.assert_allclose(s["kl_to_uniform"], math.log(2) / 2, rtol=1e-12)
  assert s["max_min_ratio"] == math.inf
  s = class_balance.balance_stats(np.array([0, 0, 0, 1, 2, 2]), 3)
  p = np.array([3, 1, 2]) / 6
  np.testing.assert_allclose(s["kl_to_uniform"], np.sum(p * np.log(3 * p)), rtol=1e-12)
  assert s["max_min_ratio"] == 3.0
  np.testing.assert_allclose(s["frequencies"], p)
  s = class_balance.balance_stats(np.arange(30) % 10, 10)
  assert s["kl_to_uniform"] == 0.0 and s["max_min_ratio"] == 1.0


def _generator(ctx, images):
  """ctx whose family "samples" the given images (in order, then repeated)."""
  imgs = jnp.asarray(images)

  def sample(params, state, rng, n):
    del params, state, rng
    return imgs[jnp.arange(n) % len(imgs)]
  return dataclasses.replace(ctx, family=dataclasses.replace(ctx.family, sample=sample))


def test_class_balance_of_a_copying_and_a_collapsed_generator(ctx, classifier_ec):
  from gen_jax.evaluators import feature_space  # pylint: disable=g-import-not-at-top
  clf = feature_space.load_classifier(classifier_ec)
  test = sources.load("digits", "test")
  real = test.x.astype(np.float32) / 255.0
  pred = clf.predict(real)
  counts = np.bincount(pred, minlength=10)
  p = counts / counts.sum()
  floor = float(np.sum(p[p > 0] * np.log(10 * p[p > 0])))
  ec = _ec(type="class_balance", num_samples=len(real), num_real=0, real_split="",
           **classifier_ec)
  assert class_balance.prerequisites(ec) == [(ec.classifier_config, ec.classifier_workdir)]
  # A generator that copies the test split scores exactly the floor.
  res = class_balance.evaluate(_generator(ctx, real), "bal", ec)
  for who in ("generated", "real"):
    assert res[f"bal/{who}_histogram"][0] == " ".join(str(int(v)) for v in counts)
    np.testing.assert_allclose(res[f"bal/{who}_kl_to_uniform"][0], floor, rtol=1e-12)
    np.testing.assert_allclose(res[f"bal/{who}_max_min_ratio"][0], counts.max() / counts.min())
  assert res["bal/real_label_histogram"][0] == " ".join(
      str(int(v)) for v in np.bincount(test.y, minlength=10))
  assert "nats" in res["bal/real_kl_to_uniform"][1]
  assert os.path.isfile(res["bal/png"][0])
  # One predicted class only: KL = ln 10, no other class, so the ratio is infinite.
  res = class_balance.evaluate(_generator(ctx, real[pred == 3]), "bal", ec)
  assert res["bal/generated_histogram"][0] == " ".join(
      str(len(real)) if c == 3 else "0" for c in range(10))
  np.testing.assert_allclose(res["bal/generated_kl_to_uniform"][0], math.log(10), rtol=1e-12)
  assert res["bal/generated_max_min_ratio"][0] == math.inf
  np.testing.assert_allclose(res["bal/real_kl_to_uniform"][0], floor, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# interpolation with labels, endpoint and continuity checks


def test_path_and_label_stats_by_hand():
  start, end = np.zeros((1, 2, 2, 1)), np.ones((1, 2, 2, 1))
  even = np.linspace(0, 1, 5)[None, :, None, None, None] * np.ones((1, 5, 2, 2, 1))
  s = grids.path_stats(even, start, end)
  assert s["endpoint_error"] == 0.0
  np.testing.assert_allclose(s["step_norms"], 0.25 * 2.0)   # ||0.25 * 1||_2 over 4 values
  np.testing.assert_allclose(s["max_step_ratio"], 1.0)
  jump = even.copy()
  jump[0, 1:4] = 0.0                                        # stays at 0, then jumps to 1
  s = grids.path_stats(jump, start + 0.1, end)
  np.testing.assert_allclose(s["endpoint_error"], 0.1)     # RMS of a constant 0.1 offset
  np.testing.assert_allclose(s["max_step_norm"], 2.0)
  np.testing.assert_allclose(s["max_step_ratio"], 4.0)     # one step of the whole span
  ls = grids.label_stats(np.array([[1, 1, 2, 2], [3, 4, 3, 4]]), np.array([[1, 2], [4, 4]]))
  assert ls["label_changes"] == 2.0                         # (1 + 3) / 2
  assert ls["endpoint_label_agreement"] == 0.75             # 1=1, 2=2, 3!=4, 4=4


def test_interpolation_checks_and_labels(ctx, classifier_ec):
  plain = _ec(type="interpolation", num=3, steps=5)
  res = grids.evaluate(ctx, "interp", plain)
  assert os.path.isfile(res["interp/png"][0]) and res["interp/png"][1] == "interpolation grid"
  assert res["interp/endpoint_error"][0] < 1e-6            # the path starts at the code
  assert res["interp/max_step_ratio"][0] >= 1.0 - 1e-6     # triangle inequality
  assert "interp/labels" not in res and grids.prerequisites(plain) == []
  # The frames the numbers are computed on, recomputed outside the evaluator.
  x = restoration.clean_images(ctx, "interp", _ec(num_examples=6))[0]
  z = ctx.family.encode(ctx.params, ctx.state, x)
  t = np.linspace(0, 1, 5)[:, None]
  frames = np.stack([np.asarray(ctx.family.decode(ctx.params, ctx.state,
                                                  (1 - t) * z[i] + t * z[3 + i]))
                     for i in range(3)])
  steps = np.linalg.norm(np.diff(frames.reshape(3, 5, -1), axis=1), axis=-1)
  np.testing.assert_allclose(res["interp/max_step_norm"][0], steps.max(), rtol=1e-4)
  rows = grids.interpolate(ctx.family, ctx.params, ctx.state, jnp.asarray(x), pairs=3, steps=5)
  assert rows.shape == (3 * 7, 8, 8, 1)                     # [x_a, 5 frames, x_b] per pair
  np.testing.assert_allclose(rows.reshape(3, 7, 8, 8, 1)[:, 1:-1], frames, atol=1e-5)
  # With a classifier: one label per frame, and the counts follow from the labels.
  labelled = _ec(type="interpolation", num=3, steps=5, **classifier_ec)
  assert grids.prerequisites(labelled) == [(labelled.classifier_config,
                                            labelled.classifier_workdir)]
  res = grids.evaluate(ctx, "interp", labelled)
  paths = [[int(v) for v in group.split()] for group in res["interp/labels"][0].split(" | ")]
  assert np.shape(paths) == (3, 5)
  changes = np.mean([sum(a != b for a, b in zip(p[1:], p[:-1], strict=True)) for p in paths])
  assert res["interp/label_changes"][0] == changes
  from gen_jax.evaluators import feature_space  # pylint: disable=g-import-not-at-top
  clf = feature_space.load_classifier(classifier_ec)
  np.testing.assert_array_equal(clf.predict(frames.reshape(15, 8, 8, 1)).reshape(3, 5), paths)
  ends = clf.predict(x).reshape(2, 3).T
  agree = np.mean(np.array(paths)[:, [0, -1]] == ends)
  assert res["interp/endpoint_label_agreement"][0] == agree
