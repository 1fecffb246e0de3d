"""The augmentation application: stratified subsets, the training sets it writes, the
real-only identity (ratio 0 = a classifier trained directly on the same real subset)
and the refusal of generators that cannot sample given labels."""
import json
import os

import numpy as np
import pytest
from conftest import experiment

from gen_jax import applications, config_lib, errors
from gen_jax.applications import augmentation
from gen_jax.data import sources
from gen_jax.trainers import loop

pytestmark = pytest.mark.usefixtures("cheap_compiles")   # tiny models: compiling is the cost

SMOKE = experiment("augmentation_mnist.py") + ":smoke"
DIGITS = sources.load("digits", "train")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, cheap_compiles):
  """The smoke application run once: (config, workdir, results)."""
  del cheap_compiles
  config, workdir = config_lib.load_config(SMOKE), str(tmp_path_factory.mktemp("aug"))
  return config, workdir, applications.run(config, workdir)


def test_stratified_subsets_are_balanced_nested_and_fixed_by_the_seed():
  y = DIGITS.y
  a = augmentation.stratified_subset(y, 100, 0, 10)
  assert len(set(a)) == 100 and np.array_equal(np.bincount(y[a], minlength=10), [10] * 10)
  np.testing.assert_array_equal(a, augmentation.stratified_subset(y, 100, 0, 10))
  b = augmentation.stratified_subset(y, 100, 1, 10)
  assert len(np.intersect1d(a, b)) < 50          # another seed, another subset
  assert set(augmentation.stratified_subset(y, 50, 0, 10)) <= set(a)   # nested in n
  odd = augmentation.stratified_subset(y, 105, 3, 10)
  np.testing.assert_array_equal(np.bincount(y[odd], minlength=10), [11] * 5 + [10] * 5)
  np.testing.assert_array_equal(augmentation.stratified_subset(y, 0, 7, 10), np.arange(len(y)))
  with pytest.raises(errors.ConfigError, match="needs 200 training examples of class 0"):
    augmentation.stratified_subset(y, 2000, 0, 10)


def test_training_set_is_the_real_subset_then_balanced_synthetic_examples():
  pool_y = np.repeat(np.arange(10, dtype=np.int32), 40)
  pool_x = np.broadcast_to(pool_y[:, None, None, None].astype(np.uint8) + 200,
                           (400, 8, 8, 1)).copy()   # each pool image says its class
  pool_x[:, 0, 0, 0] = np.arange(400) % 256          # and which pool image it is
  real = augmentation.stratified_subset(DIGITS.y, 30, 5, 10)

  def build(ratio):
    return augmentation.training_set(DIGITS.x, DIGITS.y, pool_x, pool_y, 30, ratio, 5, 10)

  x0, y0 = build(0)
  np.testing.assert_array_equal(x0, DIGITS.x[real])
  np.testing.assert_array_equal(y0, DIGITS.y[real])
  x4, y4 = build(4)
  assert x4.shape == (150, 8, 8, 1) and y4.dtype == np.int32
  np.testing.assert_array_equal(x4[:30], x0)
  np.testing.assert_array_equal(np.bincount(y4[30:], minlength=10), [12] * 10)
  np.testing.assert_array_equal(x4[30:, 1, 1, 0], y4[30:] + 200)     # labels match the images
  x1, _ = build(1)
  xt, yt = build("tstr")
  np.testing.assert_array_equal(np.bincount(yt, minlength=10), [3] * 10)
  np.testing.assert_array_equal(xt, x1[30:])            # tstr = the ratio-1 synthetic set
  assert set(x1[30:, 0, 0, 0]) <= set(x4[30:, 0, 0, 0])   # a larger ratio adds examples


def test_npz_files_hold_the_expected_counts_and_label_balance(smoke_run):
  config, workdir, results = smoke_run
  test = sources.load("digits", "test")
  for ratio, n_train in ((0, 100), (1, 200), ("tstr", 100)):
    with np.load(os.path.join(workdir, "data", f"100_{ratio}_1.npz")) as f:
      assert f["x_train"].shape == (n_train, 8, 8, 1) and f["x_train"].dtype == np.uint8
      np.testing.assert_array_equal(np.bincount(f["y_train"], minlength=10),
                                    [n_train // 10] * 10)
      np.testing.assert_array_equal(f["x_test"], test.x)
      np.testing.assert_array_equal(f["y_test"], test.y)
  with np.load(os.path.join(workdir, "synthetic", "pool.npz")) as f:
    np.testing.assert_array_equal(np.bincount(f["y"]), [10] * 10)   # 1 x 100 / 10 classes
  assert set(results) >= {"n100/ratio0/accuracy", "n100/ratio1/accuracy_std",
                          "n100/tstr/accuracy", "figure"}
  assert os.path.isfile(results["figure"][0])
  accs = []
  for seed in config.application.seeds:
    with open(os.path.join(workdir, f"100_1_{seed}", "eval", "step_00000020.json")) as f:
      accs.append(json.load(f)["results"]["test/accuracy"])
  assert results["n100/ratio1/accuracy"][0] == pytest.approx(np.mean(accs), abs=1e-12)
  assert results["n100/ratio1/accuracy_std"][0] == pytest.approx(np.std(accs, ddof=1), abs=1e-12)


def test_ratio_zero_is_the_real_only_baseline_exactly(smoke_run, tmp_path):
  """A classifier trained directly on the same real subset with the same seed, written and
  configured here without the application, gives the same data and the same results."""
  _, workdir, _ = smoke_run
  seed = 1
  idx = augmentation.stratified_subset(DIGITS.y, 100, seed, 10)
  test = sources.load("digits", "test")
  path = str(tmp_path / "real.npz")
  np.savez(path, x_train=DIGITS.x[idx], y_train=DIGITS.y[idx], x_test=test.x, y_test=test.y)
  with np.load(os.path.join(workdir, "data", f"100_0_{seed}.npz")) as f:
    np.testing.assert_array_equal(f["x_train"], DIGITS.x[idx])
    np.testing.assert_array_equal(f["y_train"], DIGITS.y[idx])
  baseline = config_lib.load_config(experiment("classifier_mnist.py") + ":smoke", [
      "total_steps=20", "steps_per_dispatch=1", "log_every_steps=10", "ckpt_every_steps=20",
      "optim.model.decay_steps=20", "data.name=npz", f"data.path={path}",
      "data.batch_size=50", f"seed={seed}"])
  want = loop.train(baseline, str(tmp_path / "baseline"))
  with open(os.path.join(workdir, f"100_0_{seed}", "eval", "step_00000020.json")) as f:
    got = json.load(f)["results"]
  assert got == want          # accuracy and nll, bit for bit


@pytest.mark.parametrize("generator", ["vae_mnist.py:smoke", "dcgan_mnist.py:smoke"])
def test_a_generator_without_a_label_sampler_is_refused_before_training(generator, tmp_path):
  config = config_lib.load_config(SMOKE)
  config.application.generator = experiment(generator)
  with pytest.raises(errors.ConfigError, match="needs a class-conditional sampler") as e:
    applications.run(config, str(tmp_path))
  assert "\n" not in str(e.value)
  assert not os.path.exists(tmp_path / "generator" / "checkpoints")
