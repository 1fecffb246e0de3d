"""Per-example metrics averaged over a whole split (likelihoods, losses, accuracy).

Config keys (`config.evals.<name>`):
  type: "likelihood" (or "accuracy", the same mean for supervised families);
  split: which split (default config.data.eval_split); batch_size: global eval
  batch; num_examples: 0 = the whole split; kwargs: passed to `family.eval_fn`
  (e.g. k=5000, chunk=500 for IWAE); quantiles: percentiles to report besides the
  mean (e.g. (50, 99, 100): `<name>/<metric>_p50` the median, `_p100` the largest
  value), for the unweighted metrics.
Results: `<name>/<metric>` = mean over examples, with `<name>/<metric>_sem`
(standard error of the mean). A metric named in `family.eval_weights` is a
weighted mean sum_i w_i v_i / sum_i w_i (e.g. per-token losses weighted by
tokens, so the result is per token of the split), its standard error the
ratio estimator's, and `<name>/<weight>_total` the summed weight.
"""

import jax
import numpy as np

from gen_jax import errors, parallel
from gen_jax.data import variants


def check(name: str, ec, config) -> None:
  """Fails before training on keys this evaluator would trip over only at the end."""
  del config
  batch = ec.get("batch_size")
  if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
    raise errors.ConfigError(
        f"evals.{name}.batch_size must be an integer >= 1 (got {batch!r}); set "
        f"--config.evals.{name}.batch_size=100 or similar")


def evaluate(ctx, name: str, ec) -> dict:
  return mean_over_split(ctx, name, ec, labels=ec.type == "accuracy")


def mean_over_split(ctx, name: str, ec, labels: bool = False) -> dict:
  """Mean and standard error of each per-example eval_fn output over a split.

  With labels=True the batches carry `y` (the split must be labelled). Padding
  examples of the last batch are masked out of every sum.
  """
  split = ctx.split(ec.get("split", ""))
  arrays = dict(split.arrays)
  if labels and "y" not in arrays:
    raise errors.ConfigError(f"evaluator {ec.type!r} needs labels; {split.where} has none")
  if not labels:   # unsupervised families never see labels
    arrays = {k: v for k, v in arrays.items() if split.spec[k].modality != "label"}
  if ec.get("num_examples", 0):
    arrays = {k: v[:ec.num_examples] for k, v in arrays.items()}
  kwargs = dict(ec.get("kwargs", {}))
  family, variant, spec = ctx.family, split.variant, split.spec
  base = ctx.key(name)

  @jax.jit
  def fn(params, state, batch, i):
    rng = jax.random.fold_in(base, i)
    batch = variants.apply_batch(variant, batch, spec, parallel.fold(rng, "data"))
    return family.eval_fn(params, state, batch, parallel.fold(rng, "eval"), **kwargs)

  weights = dict(family.eval_weights)
  quantiles = tuple(ec.get("quantiles", ()))
  acc = _Accumulator(keep=bool(quantiles))
  for out, mask in ctx.batches(fn, arrays, ec.batch_size, f"eval {name}"):
    acc.add(out, mask, weights)
  return acc.results(name, family.eval_units, weights, split.where, quantiles)


class _Accumulator:
  """Running sums for (weighted) means and their standard errors, in float64."""

  def __init__(self, keep: bool = False):
    self.sw, self.swv, self.sw2v2, self.sw2v, self.sw2 = {}, {}, {}, {}, {}
    self.count = 0.0
    self.kept = {} if keep else None   # {key: [values of the real examples, ...]}

  def add(self, out: dict, mask: np.ndarray, weights: dict) -> None:
    m = np.asarray(mask, np.float64)
    for key, v in out.items():
      v = np.asarray(v, np.float64)
      w = m * (np.asarray(out[weights[key]], np.float64) if key in weights else 1.0)
      for d, x in ((self.sw, w), (self.swv, w * v), (self.sw2v2, w * w * v * v),
                   (self.sw2v, w * w * v), (self.sw2, w * w)):
        d[key] = d.get(key, 0.0) + float(x.sum())
      if self.kept is not None and key not in weights:
        self.kept.setdefault(key, []).append(v[m > 0])
    self.count += float(m.sum())

  def results(self, name: str, units: dict, weights: dict, where: str,
              quantiles: tuple = ()) -> dict:
    """Means and standard errors; with `quantiles` (percentiles in [0, 100]) also
    `<name>/<key>_p<q>` of every unweighted per-example value (p50: the median, p100:
    the largest), which show when a few examples dominate a mean."""
    n, out = self.count, {}
    for key in self.sw:
      if key in weights.values() and key not in weights:
        out[f"{name}/{key}_total"] = (self.swv[key], f"sum over {int(n)} examples of {where}")
        continue
      mean = self.swv[key] / self.sw[key]
      # Ratio-estimator variance of sum(w v) / sum(w): sum w^2 (v - mean)^2 / (sum w)^2;
      # with unit weights, the variance of the mean (population variance / n).
      ss = self.sw2v2[key] - 2 * mean * self.sw2v[key] + mean * mean * self.sw2[key]
      sem = float(np.sqrt(max(ss, 0.0)) / self.sw[key])
      unit = units.get(key, "")
      how = f"weighted by {weights[key]}, " if key in weights else ""
      out[f"{name}/{key}"] = (mean, unit + f"; {how}mean over {int(n)} examples of {where}")
      out[f"{name}/{key}_sem"] = (sem, "standard error of the mean")
      if quantiles and key not in weights:
        values = np.concatenate(self.kept[key])
        for q in quantiles:
          out[f"{name}/{key}_p{q:g}"] = (float(np.percentile(values, q)), unit + (
              f"; {q:g}th percentile over {len(values)} examples of {where}"))
    return out
