"""Per-example metrics of a supervised family (the classifier) on a labelled split.

Config keys (`config.evals.<name>`): type "accuracy"; split (default
config.data.eval_split); batch_size; num_examples (0 = the whole split).
Results: `<name>/<metric>` = mean of the family's eval_fn outputs (accuracy,
nll) over the split, with its standard error and the number of examples.
"""
from gen_jax.evaluators import likelihood


def evaluate(run, ts, name: str, ec) -> dict:
  return likelihood.mean_over_split(run, ts, name, ec, labels=True)
