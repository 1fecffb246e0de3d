"""What a run checks before its first step, and the records it keeps beside its checkpoints.

Every problem found here is one line naming the fix (a `GenJaxError`), raised
before anything in the workdir is written: the workdir itself, the splits and
batch sizes the evaluators will need, a config that differs from the one the
run was started with, and the token vocabulary the run was trained on.
"""
import json
import os
import sys
import tempfile

import ml_collections

from gen_jax import config_lib, errors, parallel
from gen_jax.data import sources


def check_workdir(workdir: str, must_exist: bool = False) -> None:
  """The workdir and its checkpoints/ are folders (or absent, unless `must_exist`)."""
  if must_exist and not os.path.exists(workdir):
    raise errors.GenJaxError(
        f"workdir {workdir} does not exist; train first (--mode train) or check the path")
  for path in (workdir, os.path.join(workdir, "checkpoints")):
    if os.path.exists(path) and not os.path.isdir(path):
      raise errors.ConfigError(
          f"{path} is a file, not a folder; pass another --workdir or move the file away")


def check_writable(workdir: str) -> None:
  """The workdir (or the folder it will be made in) accepts files: probed with a temp file."""
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    raise errors.ConfigError(f"cannot make workdir {workdir}: {path} is a file")
  try:
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise errors.ConfigError(
        f"workdir {workdir} is not writable ({e.strerror or e} in {path}); pass a folder "
        f"you can write to") from e


# Evaluator types that read a data split, and the key that names it ("" = only
# data.eval_split), checked before training starts; EVAL_READS_NO_SPLIT holds those that
# read none. Every registered evaluator type is in exactly one of the two (tested).
EVAL_SPLIT_KEYS = {"likelihood": "split", "accuracy": "split", "reconstructions": "",
                   "interpolation": "", "sample_quality": "real_split",
                   "text_baselines": "split", "ais": "split", "bn_queries": "split",
                   "class_balance": "real_split", "density2d": "", "hmm_recovery": "split",
                   "ising_curve": "", "restoration": "split", "synthetic_tabular": "split",
                   "text_generation": "split"}
EVAL_READS_NO_SPLIT = ("samples", "modes", "stacked_mnist_modes")


def check_eval_splits(config: ml_collections.ConfigDict, train: sources.Split) -> None:
  """Every split an evaluator will read exists and has the training split's examples."""
  d, where = config.data, {}
  needs_labels = any(ec.type == "accuracy" for ec in config.evals.values())
  for name, ec in config.evals.items():
    if ec.type not in EVAL_SPLIT_KEYS:
      continue
    key = EVAL_SPLIT_KEYS[ec.type]
    split = ec.get(key, "") if key else ""
    where.setdefault(split or d.eval_split, f"evals.{name}.{key}" if split else "data.eval_split")
    if ec.type == "accuracy" and "y" not in train.arrays:
      raise errors.ConfigError(f"evals.{name}: 'accuracy' needs labels; {d.name!r} has none")
  for split, key in where.items():
    if split == d.train_split:
      continue
    try:
      ev = sources.from_config(d, split)
    except errors.GenJaxError as e:
      raise type(e)(f"{key}={split!r}: {e}") from e
    if not len(ev):
      raise errors.DataError(f"{key}={split!r}: split {split!r} of {d.name!r} is empty")
    if ev.stream or train.stream:   # one token stream: windows are cut at evaluation
      continue
    for field, f in train.spec.items():
      g = ev.spec.get(field)
      if g is None and f.modality == "label" and not needs_labels:
        continue
      if g is None or (g.shape, g.dtype) != (f.shape, f.dtype):
        got = "absent" if g is None else f"{g.dtype}{list(g.shape)}"
        raise errors.DataError(
            f"{key}={split!r}: {field!r} examples of split {split!r} are {got} but the "
            f"training split {d.train_split!r} has {f.dtype}{list(f.shape)}; use a split "
            f"of the same shape")


def check_eval_batches(config: ml_collections.ConfigDict, mesh) -> None:
  """Evaluation batches are sharded over the data axis like training batches."""
  n = mesh.shape[parallel.AXIS]
  for name, ec in config.evals.items():
    b = ec.get("batch_size")
    if ec.type in ("likelihood", "accuracy") and isinstance(b, int) and b % n:
      raise errors.ConfigError(
          f"evals.{name}.batch_size={b} must be divisible by the {n} data-parallel devices")


def save_config(config, workdir: str) -> None:
  """Writes config.json atomically (a crash leaves the old file or the new one)."""
  if parallel.is_main():
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    with open(path + ".tmp", "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))
    os.replace(path + ".tmp", path)


def saved_config(workdir: str) -> dict | None:
  """The run's config.json, or None when it is missing or unreadable."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      saved = json.load(f)
  except (OSError, ValueError):
    return None
  return saved if isinstance(saved, dict) else None


def check_config_change(saved: dict, config: ml_collections.ConfigDict, source: str) -> list:
  """Refuses a resume whose config differs from the run's outside RESUME_MAY_CHANGE.

  Returns the differing keys, which `allow_config_change=True` accepts.
  """
  keys = config_lib.changed_keys(saved, config)
  if not keys:
    return []
  what = config_lib.describe_changes(saved, config, keys)
  if not config.allow_config_change:
    raise errors.ConfigError(
        f"this config differs from the run's ({source}) in {what}; use another workdir, "
        f"or pass --config.allow_config_change=True to resume with it")
  warn(f"resuming with a config that differs from the run's ({source}) in {what} "
       f"(allow_config_change)")
  return keys


def _vocab_of(spec: dict) -> dict:
  return {k: list(f.vocab) for k, f in spec.items() if f.vocab}


def save_vocab(workdir: str, spec: dict) -> None:
  """Stores the token vocabulary with the run (`vocab.json`; setup checks it on reruns)."""
  vocab = _vocab_of(spec)
  path = os.path.join(workdir, "vocab.json")
  if vocab and not os.path.isfile(path) and parallel.is_main():
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as f:
      json.dump(vocab, f, ensure_ascii=False)


def check_vocab(workdir: str, spec: dict) -> None:
  """The data's vocabulary must be the one the run was trained with."""
  path = os.path.join(workdir, "vocab.json")
  vocab = _vocab_of(spec)
  if not vocab or not os.path.isfile(path):
    return
  with open(path) as f:
    stored = json.load(f)
  if stored != vocab:
    raise errors.DataError(
        f"the data's vocabulary differs from the one stored with this run ({path}); token ids "
        f"would not match: use the training text or a new workdir")


def warn(msg: str) -> None:
  """A problem the run works around (a skipped checkpoint), on stderr where it stands out."""
  if parallel.is_main():
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)
