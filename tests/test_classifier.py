"""The classifier family, its accuracy evaluator and the classifier-feature metrics plumbing."""
import os
import threading

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import experiment, needs_tfds

from gen_jax import config_lib, errors
from gen_jax.data import sources
from gen_jax.data import spec as spec_lib
from gen_jax.evaluators import feature_space
from gen_jax.models import classifier
from gen_jax.trainers import loop
from gen_jax.utils import locks


def _config():
  return config_lib.load_config(experiment("classifier_mnist.py") + ":smoke")


@pytest.mark.usefixtures("cheap_compiles")   # a tiny model: compiling is the cost
def test_loss_is_cross_entropy_and_eval_gives_per_example_values():
  config = _config()
  config.model.shift = 0                     # no augmentation: the loss is plain cross-entropy
  family = classifier.make(config, spec_lib.example((8, 8, 1)))
  x = jax.random.uniform(jax.random.key(0), (6, 8, 8, 1))
  y = jnp.arange(6) % 10
  params, state = jax.jit(family.init)(jax.random.key(1), {"x": x})
  net = classifier.make_net(config.model)
  # Each call jitted: one compile apiece rather than one per op.
  _, logits = jax.jit(net.apply)({"params": params["model"]}, x)
  expected = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(6), y])
  value, _ = jax.jit(family.loss, static_argnums=0)(
      "model", params, state, {"x": x, "y": y}, jax.random.key(2))
  np.testing.assert_allclose(value, expected, rtol=1e-5)   # dropout 0 in the smoke config
  out = jax.jit(family.eval_fn)(params, state, {"x": x, "y": y}, jax.random.key(3))
  assert out["accuracy"].shape == (6,) and out["nll"].shape == (6,)
  np.testing.assert_allclose(out["nll"].mean(), expected, rtol=1e-5)
  feats, probs = jax.jit(classifier.features, static_argnums=0)(net, params, x)
  assert feats.shape == (6, config.model.feature_dim)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_labels_must_be_requested():
  config = _config()
  config.data.labels = False
  with pytest.raises(errors.ConfigError, match="labels"):
    classifier.make(config, spec_lib.example((8, 8, 1)))


def test_missing_classifier_checkpoint_names_the_command(tmp_path):
  ec = ml_collections.ConfigDict(dict(classifier_config="experiments/classifier_mnist.py",
                                      classifier_workdir=str(tmp_path / "none"),
                                      train_missing=False))
  with pytest.raises(errors.GenJaxError, match="python -m gen_jax.main --config "
                     "experiments/classifier_mnist.py --workdir"):
    feature_space.load_classifier(ec)


def test_smoke_classifier_trains_and_its_features_separate_classes(tmp_path):
  ec = ml_collections.ConfigDict(dict(type="sample_quality",
                                      classifier_config="experiments/classifier_mnist.py:smoke",
                                      classifier_workdir=str(tmp_path / "clf"),
                                      train_missing=True, classifier_name="", batch_size=297))
  # The run loop trains a missing prerequisite; the evaluator restores it from the workdir's
  # own config.json, without a trainer.
  config = ml_collections.ConfigDict(dict(evals=dict(quality=ec)))
  loop.train_prerequisites(config)
  clf = feature_space.load_classifier(ec)
  assert clf.name == "digits_cnn" and "step 100" in clf.description
  test = sources.load("digits", "test")
  x = test.x.astype(np.float32) / 255.0
  acc = float(np.mean(clf.predict(x) == test.y))
  assert acc > 0.7, acc
  assert f"test accuracy {acc:.4f}" in clf.description


def test_a_prerequisite_another_process_is_training_is_waited_for_not_trained_again(
    tmp_path, capsys):
  workdir = str(tmp_path / "clf")
  config = ml_collections.ConfigDict(dict(evals=dict(q=dict(
      type="sample_quality", classifier_config="experiments/classifier_mnist.py:smoke",
      classifier_workdir=workdir, train_missing=True))))
  waiter = threading.Thread(target=loop.train_prerequisites, args=(config,))
  with locks.held(os.path.join(workdir, loop.PREREQUISITE_LOCK)):   # "another process"
    waiter.start()
    waiter.join(timeout=0.5)
    assert waiter.is_alive()                   # blocked on the lock, not training
    os.makedirs(os.path.join(workdir, "checkpoints", "100"))   # the holder finishes
  waiter.join(timeout=30)
  assert not waiter.is_alive()
  assert "training" not in capsys.readouterr().out    # found the finished run


@needs_tfds("mnist")
def test_stacked_mnist_has_1000_modes_built_from_mnist():
  s = sources.load("stacked_mnist", "test")
  base = sources.load("mnist", "test")
  assert s.x.shape == (10000, 28, 28, 3) and s.x.dtype == np.uint8
  assert len(np.unique(s.y)) > 990
  i = 7
  for c, place in enumerate((100, 10, 1)):
    (match,) = np.nonzero(np.all(base.x[..., 0] == s.x[i, ..., c], axis=(1, 2)))[:1]
    assert base.y[match[0]] == (s.y[i] // place) % 10


def _translate(img, dy, dx):
  """Brute-force zero-fill translation: out[i, j] = img[i - dy, j - dx]."""
  out = np.zeros_like(img)
  h, w = img.shape[:2]
  for i in range(h):
    for j in range(w):
      if 0 <= i - dy < h and 0 <= j - dx < w:
        out[i, j] = img[i - dy, j - dx]
  return out


@pytest.mark.parametrize("hflip", [False, True])
def test_augment_is_a_random_translation_and_flip_of_each_image(hflip):
  shift, b = 2, 1000
  base = np.arange(1, 6 * 5 + 1, dtype=np.float32).reshape(6, 5, 1)   # every pixel distinct
  x = np.broadcast_to(base, (b,) + base.shape)
  out = np.asarray(classifier.augment(jax.random.key(0), jnp.asarray(x), shift, hflip))
  seen = set()
  for img in out:
    matches = [(dy, dx, f) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)
               for f in ((False, True) if hflip else (False,))
               if np.array_equal(img, _translate(base, dy, dx)[:, ::-1] if f
                                 else _translate(base, dy, dx))]
    assert len(matches) == 1, matches
    seen.add(matches[0])
  assert len(seen) == (2 * shift + 1) ** 2 * (2 if hflip else 1)   # every offset is drawn
  same = classifier.augment(jax.random.key(0), jnp.asarray(x), 0, False)
  np.testing.assert_array_equal(same, x)
  with pytest.raises(errors.ConfigError, match="shift"):
    classifier.augment(jax.random.key(0), jnp.asarray(x), -1, False)
