"""Experiment configs: loading `file.py:arg`, `--config.a.b=value` overrides, checks.

An experiment file defines `get_config(arg: str) -> ml_collections.ConfigDict`.
`arg` is a variant name ("smoke", "k50", ...) or empty; experiments list their
variants in `VARIANTS` and call `parse_variant` so a typo fails with the valid
choices. `base()` gives the keys every run has, with their meaning; an
experiment overrides what it needs and says the rest explicitly.
"""
import ast
import importlib.util
import json
import math
import os
from typing import Iterable, Sequence

import ml_collections

from gen_jax import errors


def base() -> ml_collections.ConfigDict:
  """Keys shared by every experiment. Durations are in train steps."""
  c = ml_collections.ConfigDict()
  c.family = ""                  # key of registry.FAMILIES
  c.trainer = "sgd"              # key of trainers.loop.TRAINERS
  c.model = ml_collections.ConfigDict()   # kwargs for the family's make()
  c.data = ml_collections.ConfigDict(dict(
      name="",                   # dataset: see gen_jax.data.sources.DATASETS
      variant="",                # see gen_jax.data.variants.VARIANTS
      train_split="train",
      eval_split="test",
      batch_size=128,            # global batch, split over all devices; 0 = the whole
                                 # split every step, in stored order (the "em" trainer)
      path="",                   # npz / txt sources: file path
      download=False,            # tfds: fetch if missing (needs internet)
      description="",            # label for reported numbers; "" = the dataset name
      labels=False,              # image datasets: batches carry the labels "y"
      block_size=0,              # text streams: windows of block_size + 1 tokens
      options=ml_collections.ConfigDict(),   # source-specific settings (e.g. addition)
      classes=(),                # labels kept in the TRAINING split only (one-class runs); () = all
      # Training batches only: gen_jax.data.corruptions kind and level, applied to raw images
      # before the variant (e.g. "mutate" for a likelihood-ratio background model).
      corruption=ml_collections.ConfigDict(dict(kind="none", level=0.0)),
  ))
  c.optim = ml_collections.ConfigDict()   # one entry per player, see optim.py
  # Device layout (gen_jax.parallel): a (data, model) mesh; -1 = all remaining devices.
  c.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
  c.sharding = "replicated"      # replicated | fsdp | tensor (the family's TP rules)
  # Start from another run's parameters when this workdir has no checkpoint.
  c.init_from = ml_collections.ConfigDict(dict(
      workdir="",                # "" = from scratch
      step=-1,                   # -1 = its latest checkpoint
      use_ema=False,             # copy its EMA parameters instead
  ))
  c.sample = ml_collections.ConfigDict()  # family-specific sampling keys (e.g. prompt)
  c.total_steps = 1000
  c.steps_per_dispatch = 1       # k train steps per jitted call (lax.scan)
  c.log_every_steps = 100
  c.ckpt_every_steps = 1000
  c.sample_every_steps = 0       # 0: only at the end
  c.eval_every_steps = 0         # run config.evals every N steps too (0: only at the end)
  c.keep_checkpoints = 3
  c.ema_decay = 0.0              # 0 disables the parameter EMA
  c.seed = 0
  c.num_samples = 64             # images in sample grids (points in 2-D sample plots)
  c.plot_extent = 0.0            # 2-D plots cover [-e, e]^2; 0 = from the samples
  c.eval_at_end = True
  c.x64 = False                  # run in float64 (jax_enable_x64): EM, long HMM sequences
  # The "em" trainer (gen_jax.trainers.em): one step is one EM iteration.
  c.em = ml_collections.ConfigDict(dict(
      tol=1e-3,                  # stop once the log-likelihood per example changes by
                                 # less than tol nats; 0 = run every step
      decrease_tol=1e-4,         # a decrease beyond this (nats per example) is reported
  ))
  c.evals = ml_collections.ConfigDict()   # name -> {type: registry.EVALUATORS key, ...}
  # Resume although keys outside RESUME_MAY_CHANGE differ from the run's config.json.
  c.allow_config_change = False
  # The published number this experiment reproduces (shown beside results).
  c.reference = ml_collections.ConfigDict(dict(
      metric="",                 # an evaluator result key, e.g. "test_ll/nll_iwae"
      value=0.0,                 # in the same units and sign as that result
      source="",                 # citation, table
      also=(),                   # at most two more result keys for the results table
      estimator="",              # "exact", "bound", "IWAE estimate", ...; "" reads the units
      epochs=0.0,                # the source's training schedule in epochs; 0 = not stated
  ))
  # An application run (gen_jax.applications): type "" is a plain training run;
  # otherwise registry.APPLICATIONS[type].run(config, workdir) trains and
  # scores the models the application's own keys name.
  c.application = ml_collections.ConfigDict(dict(type=""))
  c.distributed = ml_collections.ConfigDict(dict(
      enabled=False,             # call jax.distributed.initialize
      coordinator_address="",    # "host:port"; empty: auto-detect (TPU, SLURM)
      num_processes=0,           # 0: auto-detect
      process_id=-1,             # -1: auto-detect
      cpu_collectives="",        # "gloo" for multi-process CPU runs
  ))
  return c


def parse_variant(arg: str, variants: Iterable[str]) -> str:
  """Returns `arg` ('' means the default variant) or raises listing the choices."""
  variants = list(variants)
  if arg and arg not in variants:
    raise errors.ConfigError(errors.choices("variant", arg, variants))
  return arg


def _load_module(path: str):
  if not os.path.isfile(path):
    raise errors.ConfigError(f"config file not found: {path}")
  name = "gen_jax_experiment_" + os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def sibling(this_file: str, name: str):
  """The experiment module `name`.py beside `this_file` (pass `__file__`).

  Experiments that share a builder import it this way, so an experiment file
  works from any working directory without being on sys.path.
  """
  return _load_module(os.path.join(os.path.dirname(os.path.abspath(this_file)), name + ".py"))


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resolve(spec: str) -> str:
  """An experiment spec with a relative path: as given if it exists, else from the repo root."""
  path = spec.partition(":")[0]
  if os.path.isabs(path) or os.path.exists(path):
    return spec
  return os.path.join(REPO, spec)


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """Loads `path/to/experiment.py[:variant]` and applies `a.b=value` overrides."""
  path, _, arg = spec.partition(":")
  module = _load_module(path)
  if not hasattr(module, "get_config"):
    raise errors.ConfigError(f"{path} defines no get_config(arg)")
  config = module.get_config(arg)
  for item in overrides:
    key, sep, value = item.partition("=")
    if not sep:
      raise errors.ConfigError(f"override {item!r} is not of the form key=value")
    set_value(config, key, value)
  return config


def set_value(config: ml_collections.ConfigDict, dotted: str, text: str) -> None:
  """Sets `config.<dotted>` from its string form, keeping the field's type."""
  *parents, leaf = dotted.split(".")
  node = config
  for i, part in enumerate(parents):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = ".".join(parents[:i]) or "config"
      raise errors.ConfigError(
          errors.choices(f"config key in {where}:", part, _keys(node)))
    node = node[part]
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    where = ".".join(parents) or "config"
    raise errors.ConfigError(errors.choices(f"config key in {where}:", leaf, _keys(node)))
  old = node[leaf]
  node[leaf] = _coerce(text, old, dotted)


def _keys(node) -> list:
  return list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []


def _coerce(text: str, old, key: str):
  """Parses `text` to the type of the existing value `old`."""
  try:
    if isinstance(old, bool):
      if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(text)
      return text.lower() in ("true", "1")
    if isinstance(old, int):
      return int(text)
    if isinstance(old, float):
      return float(text)
    if isinstance(old, str):
      return text
    if isinstance(old, (tuple, list)):
      value = ast.literal_eval(text)
      value = value if isinstance(value, (tuple, list)) else (value,)
      return type(old)(value)
    if isinstance(old, ml_collections.ConfigDict):
      raise errors.ConfigError(
          f"config key {key} is a section; set one of its keys: {', '.join(old.keys())}")
    return ast.literal_eval(text)
  except (ValueError, SyntaxError) as e:
    raise errors.ConfigError(
        f"cannot parse {text!r} for config key {key} (expected {type(old).__name__})") from e


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the trainer-level keys that do not depend on the family.

  Everything here would otherwise fail (or silently misbehave) only once the
  run is under way: a zero batch, a NaN learning rate that trains until the
  NaN guard stops it, a keep_checkpoints=0 that keeps nothing.
  """
  k = config.steps_per_dispatch
  if k < 1:
    raise errors.ConfigError("steps_per_dispatch must be >= 1")
  for key in ("log_every_steps", "ckpt_every_steps", "total_steps"):
    value = config[key]
    if value < 1:
      raise errors.ConfigError(f"{key} must be >= 1 (got {value})")
    if value % k:
      raise errors.ConfigError(
          f"{key}={value} must be a multiple of steps_per_dispatch={k}")
  if config.eval_every_steps < 0 or config.eval_every_steps % k:
    raise errors.ConfigError(
        f"eval_every_steps={config.eval_every_steps} must be >= 0 and a multiple of "
        f"steps_per_dispatch={k}")
  if config.sample_every_steps % k:
    raise errors.ConfigError(
        f"sample_every_steps={config.sample_every_steps} must be a multiple of "
        f"steps_per_dispatch={k}")
  if not 0.0 <= config.ema_decay < 1.0:
    raise errors.ConfigError(f"ema_decay must be in [0, 1) (got {config.ema_decay})")
  if config.sample_every_steps < 0:
    raise errors.ConfigError(
        f"sample_every_steps must be >= 0 (got {config.sample_every_steps}; 0 = only at the end)")
  if config.keep_checkpoints < 1:
    raise errors.ConfigError(
        f"keep_checkpoints must be >= 1 (got {config.keep_checkpoints}): it is how many of the "
        f"newest checkpoints are kept")
  if config.data.batch_size < 0:
    raise errors.ConfigError(f"data.batch_size must be >= 1, or 0 for the whole split (got "
                             f"{config.data.batch_size})")
  if config.trainer == "em" and config.data.batch_size != 0:
    raise errors.ConfigError(
        f"trainer 'em' takes the whole split every step: set --config.data.batch_size=0 "
        f"(got {config.data.batch_size})")
  if config.em.tol < 0 or config.em.decrease_tol < 0:
    raise errors.ConfigError(f"em.tol and em.decrease_tol must be >= 0 (got {config.em.tol}, "
                             f"{config.em.decrease_tol})")
  for player, section in config.optim.items():
    if not isinstance(section, ml_collections.ConfigDict) or section.get("name") == "frozen":
      continue
    lr = section.get("lr")
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
      raise errors.ConfigError(
          f"optim.{player}.lr must be a finite number > 0 (got {lr}); set "
          f"--config.optim.{player}.lr=1e-3 or similar")
  for name, ec in config.evals.items():
    for key, low in (("batch_size", 1), ("num_examples", 0), ("num", 1)):
      value = ec.get(key) if isinstance(ec, ml_collections.ConfigDict) else None
      if isinstance(value, (int, float)) and not isinstance(value, bool) and value < low:
        raise errors.ConfigError(f"evals.{name}.{key} must be >= {low} (got {value})")


# Keys a resumed run may change: how long it runs, what it logs and evaluates and
# where its devices are, none of which changes the trained parameters beyond
# float rounding (a new mesh, sharding or steps_per_dispatch may reorder sums).
# A key and everything below it.
RESUME_MAY_CHANGE = (
    "total_steps", "log_every_steps", "ckpt_every_steps", "sample_every_steps",
    "eval_every_steps",
    "keep_checkpoints", "steps_per_dispatch", "eval_at_end", "evals", "num_samples",
    "plot_extent", "sample", "reference", "distributed", "mesh", "sharding",
    "data.eval_split", "data.description", "data.download", "allow_config_change",
    "em.tol", "em.decrease_tol",
)


def flatten(tree: dict, prefix: str = "") -> dict:
  """{"a": {"b": 1}} -> {"a.b": 1}; an empty section stays a key of its own."""
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict) and value:
      out.update(flatten(value, name + "."))
    else:
      out[name] = value
  return out


def as_json(config: ml_collections.ConfigDict) -> dict:
  """The config as config.json stores it (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


_ABSENT = object()     # a key one of two configs lacks


def changed_keys(saved: dict, config: ml_collections.ConfigDict,
                 ignore: Sequence[str] = RESUME_MAY_CHANGE) -> list:
  """Dotted keys whose values differ between a saved config (JSON) and `config`.

  Keys under one of `ignore` are left out; a key present on one side only counts,
  except a key `base()` gained after the run was saved that `config` leaves at its
  default (it did not exist, so it cannot have been set otherwise).
  """
  a, b = flatten(saved), flatten(as_json(config))
  defaults = flatten(as_json(base()))

  def ignored(key):
    return any(key == p or key.startswith(p + ".") for p in ignore)

  def new_at_default(key):
    return key not in a and key in defaults and b.get(key, _ABSENT) == defaults[key]
  return sorted(k for k in set(a) | set(b)
                if not ignored(k) and not new_at_default(k)
                and a.get(k, _ABSENT) != b.get(k, _ABSENT))


def describe_changes(saved: dict, config: ml_collections.ConfigDict, keys: list,
                     limit: int = 4) -> str:
  """'model.hidden [128, 128] -> [64, 64], seed 0 -> 1' for the first `limit` keys."""
  a, b = flatten(saved), flatten(as_json(config))

  def show(v):
    text = "(absent)" if v is _ABSENT else json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."
  parts = [f"{k} {show(a.get(k, _ABSENT))} -> {show(b.get(k, _ABSENT))}" for k in keys[:limit]]
  more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
  return ", ".join(parts) + more
