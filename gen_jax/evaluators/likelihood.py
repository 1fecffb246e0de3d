"""Per-example likelihood metrics averaged over a whole split.

Config keys (`config.evals.<name>`):
  type: "likelihood"; split: which split (default config.data.eval_split);
  batch_size: global eval batch; num_examples: 0 = the whole split;
  kwargs: passed to `family.eval_fn` (e.g. k=5000, chunk=500 for IWAE).
Results: `<name>/<metric>` = mean over examples, with `<name>/<metric>_sem`
(standard error of the mean) and the number of examples.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors, parallel
from gen_jax.data import pipeline, sources, variants


def evaluate(run, ts, name: str, ec) -> dict:
  return mean_over_split(run, ts, name, ec, labels=False)


def mean_over_split(run, ts, name: str, ec, labels: bool) -> dict:
  """Mean and standard error of each per-example eval_fn output over a split.

  With labels=True the batches carry `y` (the split must be labelled). Padding
  examples of the last batch are masked out of every sum.
  """
  d = run.config.data
  split_name = ec.get("split", d.eval_split)
  split = sources.load(d.name, split_name, d.path, d.download)
  if labels and split.y is None:
    raise errors.ConfigError(f"evaluator {ec.type!r} needs labels; {d.name}:{split_name} has none")
  x, variant = variants.eval_arrays(d.variant, split.x)
  arrays = {"x": x, "y": split.y} if labels else {"x": x}
  if ec.get("num_examples", 0):
    arrays = {k: v[:ec.num_examples] for k, v in arrays.items()}
  kwargs = dict(ec.get("kwargs", {}))
  family = run.family
  base = parallel.fold(run.base_rng, "eval", name)

  @jax.jit
  def fn(params, state, batch, i):
    rng = jax.random.fold_in(base, i)
    batch = dict(batch, x=variants.apply(variant, batch["x"], parallel.fold(rng, "data")))
    return family.eval_fn(params, state, batch, parallel.fold(rng, "eval"), **kwargs)

  params = ts.eval_params()
  sums, sq, count = {}, {}, 0.0
  batches = list(pipeline.eval_batches(arrays, ec.batch_size, jax.process_index(),
                                       jax.process_count()))
  t0, shown = time.time(), 0
  for i, (b, mask) in enumerate(batches):
    b = {k: parallel.to_global(v, run.mesh) for k, v in b.items()}
    out = parallel.to_host(fn(params, ts.state, b, jnp.uint32(i)))
    m = parallel.to_host(parallel.to_global(mask, run.mesh))
    for key, v in out.items():
      v = np.asarray(v, np.float64)
      sums[key] = sums.get(key, 0.0) + float((v * m).sum())
      sq[key] = sq.get(key, 0.0) + float((v * v * m).sum())
    count += float(m.sum())
    if time.time() - t0 > 30 * (shown + 1):
      shown += 1
      if parallel.is_main():
        print(f"eval {name}: {i + 1}/{len(batches)} batches, {time.time() - t0:.0f}s",
              flush=True)
  units = family.eval_units
  results = {}
  for key in sums:
    mean = sums[key] / count
    var = max(sq[key] / count - mean * mean, 0.0)
    unit = units.get(key, "")
    results[f"{name}/{key}"] = (mean, unit + f"; mean over {int(count)} examples of "
                                f"{d.get('description') or d.name}:{split_name} ({d.variant})")
    results[f"{name}/{key}_sem"] = (float(np.sqrt(var / count)), "standard error of the mean")
  return results
