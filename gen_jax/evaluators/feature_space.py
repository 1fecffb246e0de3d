"""Offline sample quality of a generator in the feature space of an in-repo classifier.

Inception weights are not available offline, so every number here is computed
in the penultimate features of a classifier trained by its own experiment
(experiments/classifier_mnist.py, classifier_fashion_mnist.py) and is named
after it: FD_<classifier> (never "FID"), KID_<classifier>, ... Values are only
comparable at the same classifier checkpoint, n_real, n_fake and reference
split; every result's unit string states them.

Config keys (`config.evals.<name>`), type "sample_quality":
  classifier_workdir: the classifier's workdir; its own config.json and
    latest checkpoint are restored (no trainer, no experiment file is run)
  classifier_config: the experiment that trains it, e.g.
    "experiments/classifier_mnist.py": named in the error for a missing
    checkpoint and, with train_missing True (smoke configs), trained first by
    the run loop (seconds on digits)
  classifier_name: names the feature space in result keys ("" =
    "<dataset>_cnn", e.g. "mnist_cnn")
  num_samples: generated samples n_fake; num_real: real examples of
    real_split (default data.eval_split), 0 = the whole split
  kid_subsets, kid_subset_size: KID subsets (Binkowski et al.: 100 x 1000)
  score_splits: splits of the classifier score (Salimans et al.: 10)
  batch_size: classifier and generator batch
Results (`<name>/...`): FD_<c>, KID_<c> (+ _std over subsets),
classifier_score_<c> (+ _std), precision, recall (k=3), density, coverage
(k=5), class_kl_to_uniform and class_histogram of the generated samples'
predicted classes, and the floors FD_<c>_train_vs_ref, KID_<c>_train_vs_ref:
the same metrics between n_fake real training examples and the reference
set, i.e. what a perfect generator would score at these sample sizes.
"""
import dataclasses
import glob
import hashlib
import json
import os
from typing import Callable

import jax
import ml_collections
import numpy as np

from gen_jax import errors, parallel
from gen_jax.metrics import modes
from gen_jax.metrics import sample_quality as sq
from gen_jax.utils import ckpt


@dataclasses.dataclass
class Classifier:
  """A trained classifier loaded from its workdir."""
  workdir: str                               # as configured (shown in result units)
  name: str                                  # feature-space name, e.g. "mnist_cnn"
  description: str                           # checkpoint step, accuracy, params hash
  features_fn: Callable                      # f32[B, H, W, C] -> (feats, probs)
  batch_size: int = 1000

  def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features f32[N, D], probabilities f32[N, C]) of images in [0, 1]."""
    feats, probs = [], []
    for i in range(0, len(x), self.batch_size):
      f, p = self.features_fn(np.asarray(x[i:i + self.batch_size], np.float32))
      feats.append(np.asarray(f))
      probs.append(np.asarray(p))
    return np.concatenate(feats), np.concatenate(probs)

  def predict(self, x: np.ndarray) -> np.ndarray:
    """Predicted classes i64[N]."""
    return self.features(x)[1].argmax(-1)


_CACHE: dict = {}
DEFAULT_CONFIG = "experiments/classifier_mnist.py"
DEFAULT_WORKDIR = "runs/classifier_mnist"


def prerequisites(ec) -> list:
  """Runs that must exist before this evaluator: [(experiment spec, workdir)].

  The run loop trains a missing one first when `ec.train_missing` is set
  (smoke configs); evaluators themselves never train.
  """
  return [(ec.get("classifier_config", DEFAULT_CONFIG),
           ec.get("classifier_workdir", DEFAULT_WORKDIR))]


def load_classifier(ec) -> Classifier:
  """Restores the classifier in ec.classifier_workdir from its own saved config.

  The workdir's `config.json` (written when it was trained) gives the
  architecture; its latest checkpoint gives the parameters (the EMA when the
  run kept one). No trainer is built and no experiment file is run.
  """
  from gen_jax.models import classifier  # pylint: disable=g-import-not-at-top
  spec = ec.get("classifier_config", DEFAULT_CONFIG)
  workdir = ec.get("classifier_workdir", DEFAULT_WORKDIR)
  key = os.path.abspath(workdir)
  if key in _CACHE:
    return _CACHE[key]
  config_path = os.path.join(workdir, "config.json")
  if not (glob.glob(os.path.join(workdir, "checkpoints", "[0-9]*"))
          and os.path.isfile(config_path)):
    raise errors.GenJaxError(
        f"no classifier checkpoint in {workdir}; train it first with\n"
        f"  python -m gen_jax.main --config {spec} --workdir {workdir}\n"
        f"or point evals.<name>.classifier_workdir at an existing run")
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  checkpointer = ckpt.Checkpointer(workdir, 1, use_async=False)
  try:
    step = checkpointer.latest_step()
    saved, _ = checkpointer.restore_raw(step)
  finally:
    checkpointer.close()
  params = saved["ema"] if saved.get("ema") else saved["params"]
  params = jax.tree.map(np.asarray, params)
  sha = hashlib.sha256(b"".join(np.asarray(v).tobytes()
                                for v in jax.tree.leaves(params))).hexdigest()
  accuracy = _recorded_accuracy(workdir, step)
  net = classifier.make_net(config.model)
  fn = jax.jit(lambda x: classifier.features(net, params, x))
  name = ec.get("classifier_name", "") or f"{config.data.name}_cnn"
  trained_by = config.get("experiment", "") or spec
  desc = (f"{name}: {trained_by} at step {step}, test accuracy {accuracy}, params sha256 "
          f"{sha[:12]}")
  _CACHE[key] = Classifier(workdir, name, desc, fn, ec.get("batch_size", 1000))
  return _CACHE[key]


def _recorded_accuracy(workdir: str, step: int) -> str:
  path = os.path.join(workdir, "eval", f"step_{step:08d}.json")
  if not os.path.isfile(path):
    return "not recorded"
  with open(path) as f:
    results = json.load(f)["results"]
  acc = [v for k, v in results.items() if k.endswith("/accuracy")]
  return f"{acc[0]:.4f}" if acc else "not recorded"


def _real_images(ctx, split: str, n: int) -> tuple[np.ndarray, str]:
  """f32[n, H, W, C] real images in model space ([0, 1]) and where they came from."""
  data = ctx.split(split)
  if data.variant not in ("grayscale", "dequantized_8bit"):
    raise errors.ConfigError(
        f"sample_quality needs grayscale images (got variant {data.variant!r})")
  raw = data.arrays["x"]
  raw = raw[:n] if n else raw
  return raw.astype(np.float32) / 255.0, f"{ctx.data.name}:{split}"


def evaluate(ctx, name: str, ec) -> dict:
  from gen_jax.evaluators import mode_coverage  # pylint: disable=g-import-not-at-top
  clf = load_classifier(ec)
  d = ctx.data
  split = ec.get("real_split", "") or d.eval_split
  n_fake = ec.get("num_samples", 10000)
  real, where = _real_images(ctx, split, ec.get("num_real", 0))
  fake = mode_coverage.generated(ctx, name, n_fake, ec.get("batch_size", 1000))
  f_real, _ = clf.features(real)
  f_fake, p_fake = clf.features(fake)
  # The floor: real training examples instead of generated ones, same sizes.
  train_x = ctx.train_examples(n_fake)["x"].astype(np.float32) / 255.0
  f_train, _ = clf.features(train_x)
  c, seed = clf.name, parallel.hash_str(name)
  subsets, subset_size = ec.get("kid_subsets", 100), ec.get("kid_subset_size", 1000)
  where_n = (f"feature space {c} penultimate ({f_real.shape[1]}-d); n_real={len(f_real)} "
             f"({where}), n_fake={len(f_fake)}; classifier {clf.description}")
  fd = sq.fd_from_features(f_real, f_fake)
  kid, kid_std = sq.kid(f_real, f_fake, subsets, subset_size, seed)
  fd_floor = sq.fd_from_features(f_real, f_train)
  kid_floor, _ = sq.kid(f_real, f_train, subsets, subset_size, seed)
  score, score_std = sq.classifier_score(p_fake, ec.get("score_splits", 10))
  pr = sq.precision_recall(f_real, f_fake, k=3)
  dc = sq.density_coverage(f_real, f_fake, k=5)
  bal = modes.class_balance(p_fake.argmax(-1), p_fake.shape[1])
  kid_how = f"unbiased MMD^2, cubic kernel, {subsets} subsets of {subset_size}"
  return {
      f"{name}/FD_{c}": (fd, f"Frechet distance (not FID); {where_n}"),
      f"{name}/KID_{c}": (kid, f"{kid_how}, mean; {where_n}"),
      f"{name}/KID_{c}_std": (kid_std, "std of single-subset KID estimates"),
      f"{name}/FD_{c}_train_vs_ref": (fd_floor, f"floor: FD between {len(f_train)} real "
                                      f"{d.name}:{d.train_split} examples and the reference set"),
      f"{name}/KID_{c}_train_vs_ref": (kid_floor, "floor: KID between real training "
                                       "examples and the reference set"),
      f"{name}/classifier_score_{c}": (score, f"exp E KL(p(y|x) || p(y)) (Inception Score "
                                       f"analogue, max {p_fake.shape[1]}); "
                                       f"{ec.get('score_splits', 10)} splits of {len(p_fake)} "
                                       f"samples; classifier {clf.description}"),
      f"{name}/classifier_score_{c}_std": (score_std, "std over splits"),
      f"{name}/precision": (pr["precision"], f"Kynkaanniemi et al. 2019, k=3; {where_n}"),
      f"{name}/recall": (pr["recall"], f"Kynkaanniemi et al. 2019, k=3; {where_n}"),
      f"{name}/density": (dc["density"], f"Naeem et al. 2020, k=5; {where_n}"),
      f"{name}/coverage": (dc["coverage"], f"Naeem et al. 2020, k=5; {where_n}"),
      f"{name}/class_kl_to_uniform": (bal["kl_to_uniform"],
                                      f"nats, KL(predicted-class histogram of {len(p_fake)} "
                                      f"samples || uniform)"),
      f"{name}/class_histogram": (" ".join(str(int(v)) for v in bal["histogram"]),
                                  "generated samples per predicted class 0..C-1"),
      f"{name}/n_real": (float(len(f_real)), f"reference examples ({where})"),
      f"{name}/n_fake": (float(len(f_fake)), "generated samples"),
      f"{name}/reference": (where, "reference split of the real set"),
  }
