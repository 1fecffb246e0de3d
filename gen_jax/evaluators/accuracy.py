"""Per-example metrics of a supervised family (the classifier) on a labelled split.

Config keys (`config.evals.<name>`): type "accuracy"; split (default
config.data.eval_split); batch_size; num_examples (0 = the whole split).
Results: `<name>/<metric>` = mean of the family's eval_fn outputs (accuracy,
nll) over the split, with its standard error and the number of examples.
"""
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors, parallel
from gen_jax.data import pipeline, sources, variants


def evaluate(run, ts, name: str, ec) -> dict:
  d = run.config.data
  split_name = ec.get("split", d.eval_split)
  split = sources.load(d.name, split_name, d.path, d.download)
  if split.y is None:
    raise errors.ConfigError(f"evaluator 'accuracy' needs labels; {d.name}:{split_name} has none")
  x, variant = variants.eval_arrays(d.variant, split.x)
  y = split.y
  if ec.get("num_examples", 0):
    x, y = x[:ec.num_examples], y[:ec.num_examples]
  family = run.family
  base = parallel.fold(run.base_rng, "eval", name)

  @jax.jit
  def fn(params, state, raw, labels, i):
    rng = jax.random.fold_in(base, i)
    xb = variants.apply(variant, raw, parallel.fold(rng, "data"))
    return family.eval_fn(params, state, {"x": xb, "y": labels}, parallel.fold(rng, "eval"))

  params = ts.eval_params()
  sums, sq, count = {}, {}, 0.0
  for i, (b, mask) in enumerate(pipeline.eval_batches(
      {"x": x, "y": y}, ec.batch_size, jax.process_index(), jax.process_count())):
    out = parallel.to_host(fn(params, ts.state, parallel.to_global(b["x"], run.mesh),
                              parallel.to_global(b["y"], run.mesh), jnp.uint32(i)))
    m = parallel.to_host(parallel.to_global(mask, run.mesh))
    for key, v in out.items():
      v = np.asarray(v, np.float64)
      sums[key] = sums.get(key, 0.0) + float((v * m).sum())
      sq[key] = sq.get(key, 0.0) + float((v * v * m).sum())
    count += float(m.sum())
  results = {}
  for key in sums:
    mean = sums[key] / count
    var = max(sq[key] / count - mean * mean, 0.0)
    results[f"{name}/{key}"] = (mean, f"{family.eval_units.get(key, '')}; mean over "
                                f"{int(count)} examples of {d.name}:{split_name} ({d.variant})")
    results[f"{name}/{key}_sem"] = (float(np.sqrt(var / count)), "standard error of the mean")
  return results
