"""Anomaly detection with any family that gives a per-example score: the one-class
protocol and the likelihood out-of-distribution failure.

Protocols (`config.application.protocol`):
  one_class  (Ruff et al. 2018, "Deep One-Class Classification"): for each class
    c of `classes`, a run in W/class_<c>/ trains on the examples of class c of
    the training split only (`data.classes = (c,)`); every example of the
    whole test split is scored, the anomalies being the test examples of the
    other classes (label y != c). Reported: AUROC per class and their mean,
    in percent, as Ruff et al. report them.
  ood_pair  (Nalisnick et al. 2019, "Do Deep Generative Models Know What They
    Don't Know?"; Ren et al. 2019, "Likelihood Ratios for Out-of-Distribution
    Detection"): one run in W/model/ trains on `in_data`; the test split of
    `in_data` (normal) and the `ood_split` of `ood_data` (anomalies) are
    scored; AUROC in [0, 1] of out-of-distribution vs in-distribution. A
    model trained on Fashion-MNIST gives MNIST a HIGHER likelihood, so the raw
    likelihood's AUROC is below 1/2 (Ren et al. Table 1: 0.089), while the
    likelihood ratio recovers it (0.994).

Scores (`score`; higher = more anomalous):
  nll  -log p(x) from the family's `eval_fn`, mapped explicitly per family in
    NLL (the estimator is named in every unit string): VAE "nll_iwae" (IWAE
    estimate), flows and autoregressive models "nll" (exact), mixtures,
    factor analysis and Bayesian networks "-log_px" (exact), RBM
    "-neg_free_energy" = F(x) = -log p(x) - log Z and DBN "-bound_plus_log_z"
    (log Z is one constant per model, so these rank, and give the AUROC of,
    -log p(x) itself).
  recon  reconstruction error: `eval_fn`'s "recon_mse" where the family returns
    it (autoencoders), the RBM's "recon_error", else the mean squared error of
    decode(encode(x)) per value for families with an encoder and decoder (VAE:
    the decoder mean at the posterior mean).
  likelihood_ratio  nll(x) - nll_background(x) (Ren et al. 2019): the
    background run (W/class_<c>_background/ or W/background/) is the same
    experiment trained on inputs perturbed by `corruptions` kind "mutate" at
    rate `background_mutation` (`data.corruption`). The raw nll is reported
    beside it.

Config keys (`config.application`): type "anomaly"; protocol; model (an
experiment spec, "experiments/x.py:variant"); overrides (nested dict of that
experiment's keys to set, e.g. {"data": {"name": "fashion_mnist"},
"total_steps": 2000}); score; background_mutation; classes (one_class);
in_data ("" = the experiment's dataset), ood_data ("" = the same dataset),
ood_split, ood_transform (one of TRANSFORMS: "invert", "transpose", "hflip"
of the raw images, e.g. digits against their negatives) (ood_pair);
batch_size (scoring batch); num_examples (0 = every example of each scored
split, else the first n of each); eval_kwargs (passed to `eval_fn`, e.g.
{"k": 100, "chunk": 100} for the VAE's IWAE).

Figures: W/plots/one_class_auroc.png (per-class AUROC bars) and
W/plots/ood_scores.png (histograms of the in- and out-of-distribution scores).
"""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import applications, config_lib, errors, parallel
from gen_jax.applications import anomaly_plots
from gen_jax.data import pipeline, sources, variants
from gen_jax.metrics import ranking

PROTOCOLS = ("one_class", "ood_pair")
SCORES = ("nll", "recon", "likelihood_ratio")
TRANSFORMS = ("none", "invert", "transpose", "hflip")

# family -> (eval_fn key, sign, what sign * value is): -log p(x) or a constant shift of it.
NLL = {
    "vae": ("nll_iwae", 1.0, "nats, -log p^(x), IWAE importance-sampling estimate"),
    "flow": ("nll", 1.0, "nats, -log p(x), exact"),
    "autoregressive": ("nll", 1.0, "nats, -log p(x), exact"),
    "gmm": ("log_px", -1.0, "nats, -log p(x), exact"),
    "mixture_bernoulli": ("log_px", -1.0, "nats, -log p(x), exact"),
    "factor_analysis": ("log_px", -1.0, "nats, -log p(x), exact"),
    "ppca": ("log_px", -1.0, "nats, -log p(x), exact"),
    "bayes_net": ("log_px", -1.0, "nats, -log p(x), exact"),
    "rbm": ("neg_free_energy", -1.0, "nats, free energy F(x) = -log p(x) - log Z (unnormalized; "
                                     "ranks as -log p(x))"),
    "dbn": ("bound_plus_log_z", -1.0, "nats, -(variational lower bound on log p(x) + log Z_top) "
                                      "(an upper bound on -log p(x) less the constant log Z_top)"),
}
RECON_KEY = "recon_mse"                      # eval_fn's reconstruction error, where returned
RECON_EVAL = {"rbm": "recon_error"}          # families that return it under another name


@dataclasses.dataclass(frozen=True)
class Scored:
  """Per-example scores of one split: f64[N] (higher = more anomalous), with labels."""
  values: np.ndarray
  y: np.ndarray | None        # class labels i32[N] where the split has them
  unit: str                   # what the score is (estimator, nats)
  where: str                  # "<dataset>:<split> (<variant>)"


def check(config) -> None:
  """One-line errors for application keys, before anything trains."""
  app = config.application
  if app.protocol not in PROTOCOLS:
    raise errors.ConfigError(errors.choices("anomaly protocol", app.protocol, PROTOCOLS))
  if app.score not in SCORES:
    raise errors.ConfigError(errors.choices("anomaly score", app.score, SCORES))
  if app.protocol == "one_class" and not tuple(app.classes):
    raise errors.ConfigError("protocol 'one_class' needs application.classes, e.g. (0, 1, 2)")
  if app.protocol == "ood_pair" and app.ood_transform not in TRANSFORMS:
    raise errors.ConfigError(errors.choices("ood_transform", app.ood_transform, TRANSFORMS))
  if app.protocol == "ood_pair" and not app.ood_data and app.ood_transform == "none":
    raise errors.ConfigError("protocol 'ood_pair' needs application.ood_data or an "
                             "ood_transform: the out-of-distribution set would be the test set")
  if app.score == "likelihood_ratio" and not 0.0 < app.background_mutation <= 1.0:
    raise errors.ConfigError(f"application.background_mutation must be in (0, 1] (got "
                             f"{app.background_mutation})")
  if app.batch_size < 1 or app.num_examples < 0:
    raise errors.ConfigError(f"application.batch_size must be >= 1 and num_examples >= 0 (got "
                             f"{app.batch_size}, {app.num_examples})")


def run(config, workdir: str) -> dict:
  check(config)
  if config.application.protocol == "one_class":
    return one_class(config, workdir)
  return ood_pair(config, workdir)


def model_config(app, extra: dict):
  """The experiment `app.model` with `app.overrides`, then `extra` (dotted keys), applied."""
  overrides = config_lib.flatten(app.overrides.to_dict()) if app.overrides else {}
  return applications.sub_config(app.model, {**overrides, **extra})


def background_config(config, rate: float):
  """`config` trained on inputs "mutate"d at `rate`: the background model of a likelihood ratio."""
  bg = config.copy_and_resolve_references()
  bg.data.corruption.update(kind="mutate", level=float(rate))
  return bg


def _log(msg: str) -> None:
  if parallel.is_main():
    print(f"anomaly | {msg}", flush=True)


def _score_names(app) -> tuple:
  return ("nll", "likelihood_ratio") if app.score == "likelihood_ratio" else (app.score,)


def _trained_scores(app, config, workdir: str, splits: list, what: str) -> list:
  """Trains (or reuses) `config` in `workdir` and scores each of `splits` with `what`."""
  _log(f"{what}: run in {workdir}")
  applications.train(config, workdir)
  with applications.Restored(config, workdir) as r:
    cache = {}                              # one compiled score function for every split
    return [score_split(r.ctx, app, what, s, cache) for s in splits]


def _with_ratio(app, config, workdir: str, bg_workdir: str, splits: list) -> dict:
  """{score name: [Scored per split]}: the app's score ("likelihood_ratio": nll and the ratio)."""
  what = "nll" if app.score == "likelihood_ratio" else app.score
  out = {what: _trained_scores(app, config, workdir, splits, what)}
  if app.score == "likelihood_ratio":
    bg = background_config(config, app.background_mutation)
    bg_scores = _trained_scores(app, bg, bg_workdir, splits, "nll")
    out["likelihood_ratio"] = [
        Scored(m.values - b.values, m.y,
               f"nats, likelihood ratio -log p(x) + log p_bg(x), each "
               f"{m.unit.removeprefix('nats, ')}; p_bg trained on inputs mutated at rate "
               f"{app.background_mutation}",
               m.where) for m, b in zip(out["nll"], bg_scores, strict=True)]
  return out


def one_class(config, workdir: str) -> dict:
  """Per-class and mean AUROC (%) of the one-class protocol; see the module docstring."""
  app = config.application
  classes = [int(c) for c in app.classes]
  results, per_class = {}, {s: [] for s in _score_names(app)}
  subs = [model_config(app, {"data.classes": (c,)}) for c in classes]   # every error first
  for i, (c, sub) in enumerate(zip(classes, subs, strict=True)):
    _log(f"class {c} ({i + 1}/{len(classes)})")
    scored = _with_ratio(app, sub, os.path.join(workdir, f"class_{c}"),
                         os.path.join(workdir, f"class_{c}_background"), [""])
    for name, (s,) in scored.items():
      if s.y is None:
        raise errors.ConfigError(f"one_class needs a labelled test split; {s.where} has none")
      is_anomaly = (s.y != c).astype(np.int32)
      n1, n0 = int(is_anomaly.sum()), int((1 - is_anomaly).sum())
      auc = ranking.auroc(s.values, is_anomaly)
      se = ranking.auroc_se(auc, n1, n0)
      per_class[name].append(auc)
      _log(f"class {c}: AUROC {name} = {100 * auc:.2f}% (s.e. {100 * se:.2f})")
      what = (f"%, AUROC of {s.where}, anomalies = the {n1} examples of classes != {c} "
              f"against {n0} of class {c}; score: {s.unit}")
      results[f"class_{c}/auroc_{name}"] = (100 * auc, what)
      results[f"class_{c}/auroc_{name}_se"] = (100 * se, "%, standard error (Hanley & McNeil "
                                                         "1982)")
  for name, aucs in per_class.items():
    results[f"mean/auroc_{name}"] = (100 * float(np.mean(aucs)),
                                     f"%, mean AUROC over classes {classes}")
  path = os.path.join(workdir, "plots", "one_class_auroc.png")
  if parallel.is_main():
    anomaly_plots.bars(path, classes, {k: 100 * np.asarray(v) for k, v in per_class.items()},
                       f"one-class AUROC (%), {app.model}")
  results["plots/auroc_png"] = (path, "per-class AUROC bars")
  return results


def ood_pair(config, workdir: str) -> dict:
  """AUROC (in [0, 1]) of out- vs in-distribution test examples; see the module docstring."""
  app = config.application
  extra = {"data.name": app.in_data} if app.in_data else {}
  sub = model_config(app, extra)
  _log(f"in-distribution {sub.data.name}, out-of-distribution "
       f"{(app.ood_data or sub.data.name)}:{app.ood_split} ({app.ood_transform})")
  scored = _with_ratio(app, sub, os.path.join(workdir, "model"),
                       os.path.join(workdir, "background"), ["", "ood"])
  results, hist = {}, {}
  for name, (inside, ood) in scored.items():
    values = np.concatenate([inside.values, ood.values])
    label = np.r_[np.zeros(len(inside.values), np.int32), np.ones(len(ood.values), np.int32)]
    auc = ranking.auroc(values, label)
    se = ranking.auroc_se(auc, len(ood.values), len(inside.values))
    _log(f"AUROC {name} = {auc:.4f} (s.e. {se:.4f})")
    results[f"auroc_{name}"] = (auc, f"AUROC in [0, 1], {len(ood.values)} examples of "
                                     f"{ood.where} (anomalies) against {len(inside.values)} of "
                                     f"{inside.where}; score: {inside.unit}")
    results[f"auroc_{name}_se"] = (se, "standard error (Hanley & McNeil 1982)")
    results[f"average_precision_{name}"] = (ranking.average_precision(values, label),
                                            f"in [0, 1]; chance = {label.mean():.3f}")
    for part, s in (("in", inside), ("ood", ood)):
      results[f"{part}/{name}_mean"] = (float(s.values.mean()), f"{s.unit}; mean over {s.where}")
      results[f"{part}/{name}_sem"] = (float(s.values.std(ddof=1) / np.sqrt(len(s.values))),
                                       "standard error of the mean")
    hist[name] = (inside.values, ood.values, auc)
  path = os.path.join(workdir, "plots", "ood_scores.png")
  if parallel.is_main():
    anomaly_plots.histograms(path, hist, inside.where, ood.where)
  results["plots/scores_png"] = (path, "histograms of in- and out-of-distribution scores")
  return results


def ood_split(ctx, app):
  """The out-of-distribution split as evaluation examples of the run's data spec."""
  d = ctx.data.copy_and_resolve_references()
  if app.ood_data:
    d.name = app.ood_data
  raw = sources.from_config(d, app.ood_split)
  variants.check(d.variant, raw.binary, d.name, raw.kind)
  arrays = {k: transform(app.ood_transform, v, 1 if raw.binary else 255)
            if raw.spec[k].modality == "image" else v for k, v in raw.arrays.items()}
  arrays, spec, _ = pipeline.eval_examples(dataclasses.replace(raw, arrays=arrays), d)
  spec = {k: f.replace(shape=arrays[k].shape[1:]) for k, f in spec.items()}
  for k, f in ctx.spec.items():
    g = spec.get(k)
    if f.modality != "label" and (g is None or (g.shape, g.dtype) != (f.shape, f.dtype)):
      got = "absent" if g is None else f"{g.dtype}{list(g.shape)}"
      raise errors.DataError(f"ood_data {d.name}:{app.ood_split} field {k!r} is {got}; the "
                             f"model was trained on {f.dtype}{list(f.shape)}")
  arrays, variant = variants.eval_batch_arrays(d.variant, arrays, spec)
  extra = "" if app.ood_transform == "none" else f", {app.ood_transform}ed"
  where = f"{d.name}:{app.ood_split} ({d.variant}{extra})"
  return arrays, spec, variant, where


def transform(kind: str, x: np.ndarray, top: int) -> np.ndarray:
  """Raw images u8[N, H, W, C] -> the same images inverted (top - x), transposed or flipped."""
  if kind == "invert":
    return (top - x.astype(np.int32)).astype(x.dtype)
  if kind == "transpose":
    return np.ascontiguousarray(np.swapaxes(x, 1, 2))
  if kind == "hflip":
    return np.ascontiguousarray(x[:, :, ::-1])
  return x


def score_split(ctx, app, what: str, which: str, cache: dict | None = None) -> Scored:
  """Scores every example of the test split (which="") or of the OOD split ("ood").

  `cache` keeps the compiled score function between splits of one context.
  """
  if which == "ood":
    arrays, spec, variant, where = ood_split(ctx, app)
  else:
    split = ctx.split()
    arrays, spec, variant, where = split.arrays, split.spec, split.variant, split.where
  y = arrays.get("y")
  inputs = {k: v for k, v in arrays.items() if k in ctx.spec}   # labels only if trained on
  if app.num_examples:
    inputs = {k: v[:app.num_examples] for k, v in inputs.items()}
    y = None if y is None else y[:app.num_examples]
  cache = {} if cache is None else cache
  if (what, variant) not in cache:
    cache[what, variant] = score_fn(ctx, app, what, inputs, spec, variant)
  fn, unit = cache[what, variant]
  values = per_example(ctx, fn, inputs, app.batch_size, f"{what} of {where}")
  return Scored(values, None if y is None else np.asarray(y), unit, where)


def score_fn(ctx, app, what: str, inputs: dict, spec: dict, variant: str):
  """(jit(params, state, raw batch, i) -> f32[B] scores, unit) of one score for this family."""
  family, name = ctx.family, ctx.config.family
  kwargs = dict(app.eval_kwargs.to_dict()) if app.eval_kwargs else {}
  field = family.sample_field
  base = ctx.key("anomaly", what)

  def model_batch(batch, rng):
    return variants.apply_batch(variant, batch, spec, parallel.fold(rng, "data"))

  probe = {k: jnp.asarray(v[:1]) for k, v in inputs.items()}
  returns = jax.eval_shape(lambda b: family.eval_fn(
      ctx.params, ctx.state, model_batch(b, base), base, **kwargs), probe)
  if what == "nll":
    if name not in NLL or NLL[name][0] not in returns:
      raise errors.ConfigError(f"anomaly score 'nll' needs a log-likelihood; family {name!r} "
                               f"gives none (families with one: {', '.join(sorted(NLL))})")
    key, sign, unit = NLL[name]
  else:
    key = RECON_KEY if RECON_KEY in returns else RECON_EVAL.get(name)
    sign, unit = 1.0, "mean squared error per value of the reconstruction"
    if key is None and (family.encode is None or family.decode is None or name == "flow"):
      raise errors.ConfigError(f"anomaly score 'recon' needs a reconstruction; family {name!r} "
                               f"has none (no {RECON_KEY!r} in eval_fn, no lossy encode/decode)")
    if key is not None:
      unit = family.eval_units.get(key, unit)

  @jax.jit
  def fn(params, state, batch, i):
    rng = jax.random.fold_in(base, i)
    b = model_batch(batch, rng)
    if key is None:                                          # decode(encode(x)) error
      x = b[field]
      rec = family.decode(params, state, family.encode(params, state, x))
      return jnp.mean(jnp.reshape((rec - x) ** 2, (x.shape[0], -1)), axis=-1)
    out = family.eval_fn(params, state, b, parallel.fold(rng, "eval"), **kwargs)
    return sign * out[key].astype(jnp.float32)
  how = f"eval_fn {key!r}" if key else "decode(encode(x))"
  return fn, f"{unit} [{ctx.config.family}: {how}]"


def per_example(ctx, fn, arrays: dict, batch_size: int, what: str) -> np.ndarray:
  """fn over every example of `arrays` in order, padding dropped: f64[N]."""
  out = [np.asarray(v, np.float64)[np.asarray(m) > 0]
         for v, m in ctx.batches(fn, arrays, batch_size, f"anomaly | scoring {what}")]
  values = np.concatenate(out)
  if not np.isfinite(values).all():
    raise errors.DataError(f"{int((~np.isfinite(values)).sum())} non-finite scores ({what})")
  return values
