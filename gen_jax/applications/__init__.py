"""Applications over every family: each one trains (or reuses) the runs it needs
and scores them with the same metrics whatever family made them.

An application is a module in `registry.APPLICATIONS` exposing
`run(config, workdir) -> {key: (value, unit)}`. Its experiment config sets
`config.application.type` and the application's own keys under
`config.application` (which models, which protocol); `python -m gen_jax.main
--config experiments/<app>.py --workdir W` dispatches here. The runs it trains
are ordinary runs in sub-directories of W (`W/<part>/`), so rerunning the same
command resumes whatever was interrupted and reuses whatever finished.

An application asks a family only for the function it needs, through
`require(family, what, who)`: a log-likelihood (`eval_fn` with an "nll" key),
an encoder/decoder, or a sampler; a family without it is refused with one line
naming what is missing. Applications sit above the trainers (like `main`);
families and evaluators never import them.

Results go to W/eval/application.json ({"results", "units"}, the layout of
the evaluators' step files, so `gen_jax.report` reads them) and one
provenance record per invocation to W/run_info.jsonl.
"""
import json
import os
import time

import ml_collections

from gen_jax import config_lib, errors, parallel, provenance, registry


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs config.application (see the module docstring) and records its results."""
  module = registry.application_module(config.application.type)
  os.makedirs(workdir, exist_ok=True)
  recorder = provenance.Recorder(workdir, 0, mode="application")
  t0 = time.time()
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config_lib.as_json(config), f, indent=2)
  out = module.run(config, workdir)
  write_results(workdir, out)
  recorder.finish(0, time.time() - t0, 0, application=config.application.type)
  return out


def write_results(workdir: str, out: dict) -> str:
  """Prints `out` ({key: (value, unit)}) and writes W/eval/application.json."""
  results = {k: v for k, (v, _) in out.items()}
  units = {k: u for k, (_, u) in out.items()}
  path = os.path.join(workdir, "eval", "application.json")
  if parallel.is_main():
    for key, (value, unit) in out.items():
      shown = f"{value:.4f}" if isinstance(value, float) else value
      print(f"application | {key} = {shown}  [{unit}]", flush=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      json.dump({"results": results, "units": units}, f, indent=2)
  return path


def sub_config(spec: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """The experiment config `spec` ("experiments/x.py:variant") with dotted-key overrides.

  Override values are Python values (not strings); a key the config lacks is
  the usual one-line error.
  """
  config = config_lib.load_config(config_lib.resolve(spec))
  known = config_lib.flatten(config_lib.as_json(config))
  for key in overrides or {}:
    if key not in known and not any(k.startswith(key + ".") for k in known):
      raise errors.ConfigError(f"application override {key!r}: {spec} has no such key")
  config.update_from_flattened_dict(dict(overrides or {}))
  config_lib.validate(config)
  return config


def train(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Trains `config` in `workdir` unless its final checkpoint is there (then reuses it)."""
  from gen_jax.trainers import checks, loop  # pylint: disable=g-import-not-at-top
  if _finished(workdir, config.total_steps):
    saved = checks.saved_config(workdir)     # a finished run of another config is not reused
    if saved is not None:
      checks.check_config_change(saved, config, os.path.join(workdir, "config.json"))
    loop.log(f"reusing {workdir} (step {config.total_steps})")
    return
  loop.train(config, workdir)


def _finished(workdir: str, total_steps: int) -> bool:
  return os.path.isdir(os.path.join(workdir, "checkpoints", str(total_steps)))


class Restored:
  """A trained run opened for scoring: `.ctx` is its evaluator Context (family,
  eval params, state, data splits). Use as a context manager."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    from gen_jax.trainers import loop  # pylint: disable=g-import-not-at-top
    self._run = loop.setup(config, workdir)
    ts = loop.init_or_restore(self._run, require_checkpoint=True)
    self.ctx = loop.eval_context(self._run, ts, None)

  def __enter__(self):
    return self

  def __exit__(self, *a):
    self._run.close()
    return False


NEEDS = {
    "nll": "a log-likelihood (eval_fn returning 'nll')",
    "encode": "an encoder (Family.encode)",
    "decode": "a decoder (Family.decode)",
    "sample": "a sampler (Family.sample)",
}


def require(family, what: str, who: str, probe=None) -> None:
  """Raises a one-line ConfigError when `family` lacks `what` (a key of NEEDS).

  For "nll", `probe` is one batch to call `eval_fn` on (the only way to see
  which per-example values a family returns).
  """
  ok = True
  if what in ("encode", "decode", "sample"):
    ok = getattr(family, what) is not None
  elif what == "nll":
    ok = probe is not None and "nll" in probe
  if not ok:
    raise errors.ConfigError(f"{who} needs {NEEDS[what]}; this family has none")
