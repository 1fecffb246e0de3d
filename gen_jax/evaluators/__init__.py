"""Evaluators: plug-ins named in `config.evals`, each `evaluate(ctx, name, ec)`.

`ctx` is an `evaluators.context.Context`: the family's pure functions, the
eval params and state, the data the evaluator asks for and a writer; no
evaluator sees the trainer. `run_evals` runs them all, prints each value with
its units, appends them to the metric writer and saves
`<workdir>/eval/step_<N>.json`. An evaluator with `periodic = False` in its
config runs at the end of training and under `--mode eval` only, not at the
`eval_every_steps` evaluations of a learning curve (for costly ones).
"""
import json
import os

from gen_jax import parallel, registry


def run_evals(ctx, periodic: bool = False) -> dict:
  """Runs config.evals (with periodic=True, those without `periodic = False`)."""
  results, units = {}, {}
  for name, ec in ctx.config.evals.items():
    if periodic and not ec.get("periodic", True):
      continue
    module = registry.evaluator_module(ec.type)
    out = module.evaluate(ctx, name, ec)
    for key, (value, unit) in out.items():
      results[key], units[key] = value, unit
      if parallel.is_main():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"eval step {ctx.step} | {key} = {shown}  [{unit}]", flush=True)
  numeric = {k: v for k, v in results.items() if isinstance(v, (int, float))}
  ctx.writer.write(ctx.step, numeric)
  if parallel.is_main():
    os.makedirs(os.path.join(ctx.workdir, "eval"), exist_ok=True)
    with open(os.path.join(ctx.workdir, "eval", f"step_{ctx.step:08d}.json"), "w") as f:
      json.dump({"step": ctx.step, "results": results, "units": units}, f, indent=2)
  return results
