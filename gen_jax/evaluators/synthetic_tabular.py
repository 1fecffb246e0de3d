"""Synthetic rows against real ones: fidelity, train-on-synthetic utility, and the real floor.

type "synthetic_tabular", for families whose samples are rows: discrete
tables (the "bayes_net" family on "bnlearn" cases, `x: i32[N, V]`) or
continuous rows (the "gmm" family on digits; images are flattened to
f32[N, H*W*C] in the data variant's scale, e.g. [0, 1] for grayscale).
It draws n synthetic rows from the checkpoint's sampler and compares them
with the real rows of the eval split (gen_jax.metrics.tabular):

discrete tables
  marginal_tv_mean, _max   per-column total-variation distance of the
                           marginals, mean and max over columns, in [0, 1]
  pairwise_tv_mean         TV of the joint of each column pair, mean over
                           all V (V - 1) / 2 pairs, in [0, 1]
  tstr_accuracy            a classifier (`classifier`) of the `target` column
                           from the one-hot other columns, fitted on the n
                           synthetic rows, accuracy on the real eval rows
  tstr_accuracy_real       the same classifier fitted on n real training rows
  tstr_ratio               tstr_accuracy / tstr_accuracy_real (1: as useful as
                           real data); tstr_majority: the majority-class rate
continuous rows
  wasserstein_mean         per-feature 1-D W1 distance, mean over features
  corr_frobenius, corr_mean_abs   difference of the correlation matrices
  discriminator_auroc      cross-validated logistic regression, real vs
                           synthetic (0.5: indistinguishable to it)
  tstr                     text: TSTR needs a sampler of labelled rows; the
                           family contract's `sample` returns rows only
Every fidelity metric has a `_floor`: the same metric for n real TRAINING
rows in place of the synthetic ones, i.e. the sampling noise at these sizes:
a perfect generator matches the floor, not 0. n = min(num_samples, size of
the training split), so the floor always has as many rows as the synthetic set.
The floor's rows are those the model was fitted on, so a model that copies
its training rows meets the floor too: these are fidelity, not novelty, scores.

Config keys: num_samples (default 10000), split (default data.eval_split),
num_real (real eval rows used, 0 = all), target (discrete: a column name or
index; default the last observed column), classifier ("logistic" | "tree"),
folds (discriminator cross-validation, default 5), batch_size (rows per
sampler call, 0 = all at once). Columns the eval split does not observe
(hidden variables hold -1) are left out.
"""
import numpy as np

from gen_jax import errors, parallel
from gen_jax.data import variants
from gen_jax.evaluators import mode_coverage
from gen_jax.metrics import tabular

MODALITIES = ("table", "image", "points")


def check(name: str, ec, config) -> None:
  """Fails before training on keys this evaluator would trip over only at the end."""
  del config
  classifier = ec.get("classifier", "logistic")
  if classifier not in tabular.CLASSIFIERS:
    raise errors.ConfigError(errors.choices(f"evals.{name}.classifier", classifier,
                                            tabular.CLASSIFIERS))
  for key, low in (("num_samples", 10), ("folds", 2), ("num_real", 0), ("batch_size", 0)):
    value = ec.get(key, low)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
      raise errors.ConfigError(f"evals.{name}.{key} must be an integer >= {low} (got {value!r})")


def evaluate(ctx, name: str, ec) -> dict:
  check(name, ec, ctx.config)
  field = ctx.family.sample_field
  spec = ctx.spec.get(field)
  if spec is None or spec.modality not in MODALITIES:
    raise errors.ConfigError(f"evaluator 'synthetic_tabular' needs samples of a table, image or "
                             f"points field; family {ctx.config.family!r} samples {field!r}")
  split = ctx.split(ec.get("split", ""))
  real = np.asarray(split.arrays[field])
  if ec.get("num_real", 0):
    real = real[:ec.num_real]
  train = ctx.train_examples(int(ec.get("num_samples", 10000)))
  n = len(train[field])
  fake = mode_coverage.generated(ctx, name, n, ec.get("batch_size", 0))
  if fake.shape[1:] != real.shape[1:]:
    raise errors.ConfigError(f"samples of shape {fake.shape[1:]} do not match the data's "
                             f"{real.shape[1:]}")
  d = ctx.data
  sizes = (f"n={n} synthetic rows vs {len(real)} real rows of {split.where}; floor: {n} real "
           f"rows of {d.get('description') or d.name}:{d.train_split}")
  seed = parallel.hash_str(name)
  if spec.modality == "table":
    out = _discrete(name, ec, spec, real, np.asarray(train[field]), fake, sizes, seed)
  else:
    train_x = variants.apply_batch(d.variant, {field: train[field]}, ctx.spec,
                                   ctx.key(name, "train"))[field]
    real_x = variants.apply_batch(split.variant, {field: real}, split.spec,
                                  ctx.key(name, "real"))[field]
    out = _continuous(name, ec, spec, np.asarray(real_x), np.asarray(train_x), fake, sizes,
                      seed, ctx.config.family, "y" in split.arrays)
  out[f"{name}/n_synthetic"] = (float(n), f"synthetic rows (min(num_samples, training split) = "
                                          f"the floor's real rows); {sizes}")
  out[f"{name}/n_real"] = (float(len(real)), f"real reference rows of {split.where}")
  return out


def _with_floor(out: dict, key: str, value: float, floor: float, unit: str) -> None:
  out[key] = (float(value), unit)
  out[f"{key}_floor"] = (float(floor), "the same for real training rows in place of the "
                                       "synthetic ones (sampling noise at these sizes)")


def _discrete(name, ec, spec, real, train, fake, sizes, seed) -> dict:
  cards = np.asarray(spec.cardinality, np.int64)
  names = spec.columns or tuple(f"c{i}" for i in range(len(cards)))
  # Columns the real data observes in every row (hidden variables hold -1).
  cols = [c for c in range(len(cards)) if (real[:, c] >= 0).all() and (train[:, c] >= 0).all()]
  if len(cols) < 2:
    raise errors.ConfigError("synthetic_tabular needs at least 2 observed columns")
  for what, x in (("synthetic", fake), ("real", real), ("training", train)):
    x = x[:, cols]
    if x.min() < 0 or (x >= cards[cols]).any():
      raise errors.ConfigError(f"the {what} rows hold a state outside their column's "
                               f"cardinality")
  tables = [np.asarray(x[:, cols], np.int64) for x in (fake, real, train)]
  fake, real, train = tables
  cards = cards[cols]
  out = {}
  tv, tv0 = tabular.marginal_tv(fake, real, cards), tabular.marginal_tv(train, real, cards)
  how = f"{len(cols)} columns; {sizes}"
  _with_floor(out, f"{name}/marginal_tv_mean", tv.mean(), tv0.mean(),
              f"total variation of each column's marginal, mean over {how}")
  _with_floor(out, f"{name}/marginal_tv_max", tv.max(), tv0.max(),
              f"total variation of each column's marginal, max over {how}")
  pair = tabular.mean_over_pairs(tabular.pairwise_tv(fake, real, cards))
  pair0 = tabular.mean_over_pairs(tabular.pairwise_tv(train, real, cards))
  _with_floor(out, f"{name}/pairwise_tv_mean", pair, pair0,
              f"total variation of each column pair's joint, mean over "
              f"{len(cols) * (len(cols) - 1) // 2} pairs of {how}")

  t = _target(ec, names, cols)
  rest = [i for i in range(len(cols)) if i != t]

  def features(x):
    return tabular.one_hot(x[:, rest], cards[rest])

  classifier = ec.get("classifier", "logistic")
  acc = tabular.classifier_accuracy(features(fake), fake[:, t], features(real), real[:, t],
                                    classifier, seed)
  acc0 = tabular.classifier_accuracy(features(train), train[:, t], features(real), real[:, t],
                                     classifier, seed)
  what = (f"accuracy on the real eval rows of a {classifier} classifier of column "
          f"{names[cols[t]]!r} ({cards[t]} states) from the one-hot other {len(rest)} columns")
  out[f"{name}/tstr_accuracy"] = (acc, f"{what}, fitted on the synthetic rows; {sizes}")
  out[f"{name}/tstr_accuracy_real"] = (acc0, f"{what}, fitted on the floor's real training rows")
  out[f"{name}/tstr_ratio"] = (acc / acc0 if acc0 > 0 else 0.0,
                               "tstr_accuracy / tstr_accuracy_real (1: synthetic rows train "
                               "as well as real ones)")
  out[f"{name}/tstr_majority"] = (tabular.majority_accuracy(train[:, t], real[:, t]),
                                  "accuracy of always predicting the training rows' majority "
                                  "class of the target")
  return out


def _target(ec, names: tuple, cols: list) -> int:
  """Position among the observed columns `cols` of the TSTR target column."""
  target = ec.get("target", "")
  if target == "" or target is None:
    return len(cols) - 1
  if isinstance(target, str):
    if target not in names:
      raise errors.ConfigError(errors.choices("synthetic_tabular target column", target, names))
    target = names.index(target)
  if target not in cols:
    raise errors.ConfigError(f"synthetic_tabular target column {target} is not an observed "
                             f"column of the data")
  return cols.index(target)


def _continuous(name, ec, spec, real, train, fake, sizes, seed, family: str,
                labelled: bool) -> dict:
  real, train, fake = (np.asarray(x, np.float64).reshape(len(x), -1)
                       for x in (real, train, fake))
  scale = ("pixel values in the data variant's scale" if spec.modality == "image"
           else "data units")
  out = {}
  w, w0 = tabular.wasserstein_1d(fake, real), tabular.wasserstein_1d(train, real)
  how = f"{real.shape[1]} features; {sizes}"
  _with_floor(out, f"{name}/wasserstein_mean", w.mean(), w0.mean(),
              f"{scale}, 1-D Wasserstein-1 distance of each feature, mean over {how}")
  c, c0 = (tabular.correlation_difference(x, real) for x in (fake, train))
  const = "a constant feature has correlation 0 with the others"
  _with_floor(out, f"{name}/corr_frobenius", c["frobenius"], c0["frobenius"],
              f"Frobenius norm of the difference of the Pearson correlation matrices ({const}); "
              f"{how}")
  _with_floor(out, f"{name}/corr_mean_abs", c["mean_abs"], c0["mean_abs"],
              f"mean |difference| of the Pearson correlations over feature pairs ({const}); "
              f"{how}")
  m = min(len(real), len(fake))
  folds = int(ec.get("folds", 5))
  auc = tabular.discriminator_auroc(real[:m], fake[:m], folds, seed)
  auc0 = tabular.discriminator_auroc(real[:m], train[:m], folds, seed)
  _with_floor(out, f"{name}/discriminator_auroc", auc, auc0,
              f"AUROC of a standardized logistic regression telling {m} synthetic from {m} "
              f"real eval rows, {folds}-fold cross-validated (0.5: indistinguishable to it)")
  why = ("the family contract's sample returns rows without labels" if labelled
         else "the data has no labels either")
  out[f"{name}/tstr"] = ("not computed", f"train-on-synthetic/test-on-real needs a sampler of "
                                         f"labelled rows; family {family!r}: {why}")
  return out
