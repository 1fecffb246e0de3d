"""Evaluators: plug-ins named in `config.evals`, each `evaluate(run, ts, name, ec)`.

`run_evals` runs them all, prints each value with its units, appends them to
the metric writer and saves `<workdir>/eval/step_<N>.json`.
"""
import json
import os

from gen_jax import parallel, registry


def run_evals(run, ts, step: int, writer) -> dict:
  results, units = {}, {}
  for name, ec in run.config.evals.items():
    module = registry.evaluator_module(ec.type)
    out = module.evaluate(run, ts, name, ec)
    for key, (value, unit) in out.items():
      results[key], units[key] = value, unit
      if parallel.is_main():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"eval step {step} | {key} = {shown}  [{unit}]", flush=True)
  numeric = {k: v for k, v in results.items() if isinstance(v, (int, float))}
  writer.write(step, numeric)
  if parallel.is_main():
    os.makedirs(os.path.join(run.workdir, "eval"), exist_ok=True)
    with open(os.path.join(run.workdir, "eval", f"step_{step:08d}.json"), "w") as f:
      json.dump({"step": step, "results": results, "units": units}, f, indent=2)
  return results
