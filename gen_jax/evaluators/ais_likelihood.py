"""Test log-probabilities of RBMs and DBNs from AIS estimates of log Z, with error bars.

For the families "rbm" (log p(v) = -F(v) - log Z) and "dbn" (the variational
lower bound, with log Z of the top RBM). log Z is estimated ONCE per
evaluation by annealed importance sampling (`gen_jax.inference.ais`) from a
base model with W = 0: "base_rate" (Salakhutdinov & Murray 2008: visible
biases from the mean of the training split as the top RBM sees it, Laplace-
style pseudo-count `base_pseudo_count`) or "zero_weight" (the target's own
biases). Every likelihood below is labelled "AIS estimate" with its chains,
inverse temperatures and schedule. AIS is unbiased for Z, so on average it
under-estimates log Z and OVER-estimates log p(v). RAISE (Burda et al. 2015)
on the first `raise_examples` test examples is a second, independent estimate:
a stochastic lower bound on the log-probability under the annealed model q,
which is conservative for log p only when the annealing chains mix (for
CD-trained RBMs q can exceed p: see `gen_jax.inference.ais`); for a DBN it
replaces log p_top(h) in the bound, at one upward sample h per example. Where
the top RBM is small, log Z is also exact.

Config keys (`config.evals.<name>`): type "ais"; split (default
data.eval_split); batch_size (examples per jitted call); num_examples (0 =
the whole split); chains (100) and schedule ("paper": 14,503 inverse
temperatures; "piecewise" | "linear" | "sigmoid" with num_betas); base
("base_rate" | "zero_weight"); base_pseudo_count (1.0); exact_max_units (20:
also log Z by exact enumeration when the top RBM's smaller layer is at most
this size); raise_examples (0 = no RAISE), raise_chains (1 per example),
raise_schedule, raise_num_betas; samples (dbn: upward samples per example
for the bound, 10).

Results (`<name>/<key>`; nats):
  log_z, log_z_se      AIS estimate of log Z (top RBM) and its s.e. in log space
  log_z_base           exact log Z of the base model
  log_px (rbm) | log_px_lower_bound (dbn), with _sem: mean over test examples
                       of -F(v) - log Z^ (or the bound); the s.e. combines the
                       spread over examples and log Z^'s s.e.
  <target>_sem_examples  the s.e. over examples alone
  log_z_exact, <target>_exact: with log Z by enumeration (small top RBMs)
  raise_<target>, raise_<target>_sem, ais_<target>_raise_examples: RAISE and
                       AIS estimates on the same first raise_examples examples;
  raise_minus_ais, raise_minus_ais_sem: their paired difference
  ais_chains, ais_betas: the numbers of chains and of inverse temperatures
  train_sha256         (binary data) SHA-256 of the model-space training split,
                       bits packed in stored order: names the binarization used
"""
import hashlib
import math
from functools import partial

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax import errors
from gen_jax.data import sources, variants
from gen_jax.evaluators import likelihood
from gen_jax.inference import ais
from gen_jax.models import dbn, rbm

FAMILIES = {"rbm": rbm, "dbn": dbn}
BASES = ("base_rate", "zero_weight")
DEFAULTS = dict(split="", num_examples=0, chains=ais.PAPER_CHAINS, schedule="paper",
                num_betas=1000, base="base_rate", base_pseudo_count=1.0, exact_max_units=20,
                raise_examples=0, raise_chains=1, raise_schedule="piecewise",
                raise_num_betas=1000, samples=10)


def _settings(ec) -> dict:
  unknown = sorted(set(ec.keys()) - set(DEFAULTS) - {"type", "batch_size"})
  if unknown:
    raise errors.ConfigError(f"unknown key(s) for evaluator 'ais': {', '.join(unknown)}; valid: "
                             f"{', '.join(sorted(DEFAULTS))}, batch_size")
  return {**DEFAULTS, **{k: ec[k] for k in ec.keys() if k != "type"}}


def check(name: str, ec, config) -> None:
  """Fails before training on a family without an RBM on top or on bad keys."""
  if config.family not in FAMILIES:
    raise errors.ConfigError(f"evals.{name} (ais) estimates log Z of an RBM: family 'rbm' or "
                             f"'dbn' (got {config.family!r})")
  likelihood.check(name, ec, config)
  s = _settings(ec)
  if s["base"] not in BASES:
    raise errors.ConfigError(errors.choices(f"evals.{name}.base", s["base"], BASES))
  for key in ("schedule", "raise_schedule"):
    if s[key] not in ais.SCHEDULES:
      raise errors.ConfigError(errors.choices(f"evals.{name}.{key}", s[key], ais.SCHEDULES))
  for key in ("chains", "raise_chains", "samples", "num_betas", "raise_num_betas"):
    if not isinstance(s[key], int) or s[key] < (2 if "betas" in key else 1):
      raise errors.ConfigError(f"evals.{name}.{key} must be an integer >= "
                               f"{2 if 'betas' in key else 1} (got {s[key]!r})")


_log_z_exact = jax.jit(ais.log_z_exact, static_argnums=1)
CHUNK = 1000   # examples per call of the jitted data transform (one compiled shape)


@partial(jax.jit, static_argnames=("variant", "family"))
def _to_model(x, rng, params, variant: str, family: str):
  """Raw examples -> (model-space v f32[B, D], top RBM visible means f32[B, V_top])."""
  v = variants.apply(variant, x, rng)
  v = v.reshape(v.shape[0], -1)
  return v, FAMILIES[family].top_inputs(params, v)


def _model_space(ctx, split: str):
  """(v f32[N, D], top RBM visible means f32[N, V_top]) of a split, in model space.

  The variant's random part is fixed as for every evaluation (`eval_batch_arrays`).
  """
  d = ctx.data
  raw = sources.from_config(d, split)
  arrays, variant = variants.eval_batch_arrays(d.variant, dict(raw.arrays), raw.spec)
  x = arrays[rbm.data_field(raw.spec)]
  n = len(x)
  pad = np.concatenate([x, np.repeat(x[:1], -n % CHUNK, 0)]) if n % CHUNK else x
  out = [_to_model(pad[i:i + CHUNK], jax.random.fold_in(ctx.key("ais", "data"), i),
                   ctx.params, variant, ctx.config.family) for i in range(0, len(pad), CHUNK)]
  v, top = (np.concatenate([np.asarray(o[j]) for o in out])[:n] for j in (0, 1))
  return v, top


def _sha256_bits(v: np.ndarray) -> str:
  """SHA-256 of binary examples f[N, D], bits packed per example in stored order."""
  return hashlib.sha256(np.packbits(v > 0.5, axis=1).tobytes()).hexdigest()


def _free_energy_np(p: dict, v: np.ndarray, visible: str) -> np.ndarray:
  """F(v) in float64 numpy (a few examples; no compile)."""
  p = {k: np.asarray(x, np.float64) for k, x in p.items()}
  if visible == "gaussian":
    inv = np.exp(-p["log_sigma"])
    a = p["bh"] + (v * inv) @ p["w"]
    return 0.5 * np.sum(((v - p["bv"]) * inv) ** 2, -1) - np.logaddexp(0, a).sum(-1)
  return -v @ p["bv"] - np.logaddexp(0, p["bh"] + v @ p["w"]).sum(-1)


def evaluate(ctx, name: str, ec) -> dict:
  s = _settings(ec)
  config = ctx.config
  module = FAMILIES[config.family]
  visible = module.visible_kind(config)
  top = module.top_rbm(ctx.params)
  num_v, num_h = top["w"].shape
  train_v, train_top = _model_space(ctx, ctx.data.train_split)
  mean_v, n_train = train_top.astype(np.float64).mean(0), len(train_v)
  sha = _sha256_bits(train_v) if ctx.data.variant.startswith("binarized") else ""
  del train_v, train_top
  if s["base"] == "base_rate":
    base = ais.base_rate_rbm(top, mean_v, s["base_pseudo_count"], n_train)
    base_text = (f"base-rate base model (W = 0, visible biases from the {n_train} training "
                 f"examples, pseudo-count {s['base_pseudo_count']:g})")
  else:
    base, base_text = ais.zero_weight_rbm(top), "zero-weight base model (the target's biases)"
  betas = ais.schedule(s["schedule"], s["num_betas"])
  res = ais.ais(ctx.key(name, "ais"), base, top, betas, s["chains"], visible)
  log_z, log_z_se = float(res["log_z"]), float(res["log_z_se"])
  how = (f"AIS estimate: {s['chains']} chains x {len(betas):,} inverse temperatures "
         f"('{s['schedule']}' schedule), {base_text}")
  out = {f"{name}/log_z": (log_z, f"nats, log Z of the {num_v}x{num_h} top RBM, {how}"),
         f"{name}/log_z_se": (log_z_se, "nats, standard error of the AIS log Z estimate in log "
                                        "space (delta method: sd(w) / (sqrt(chains) mean(w)))"),
         f"{name}/log_z_base": (float(ais.log_z_zero_weight(base, visible)),
                                "nats, exact log Z of the AIS base model"),
         f"{name}/ais_chains": (int(s["chains"]), "AIS chains"),
         f"{name}/ais_betas": (len(betas), "AIS inverse temperatures, 0 and 1 included")}
  exact = None
  if min(num_v, num_h) <= s["exact_max_units"] and (visible == "bernoulli" or
                                                     num_h <= s["exact_max_units"]):
    exact = float(_log_z_exact(top, visible))
    n_states = min(num_v, num_h) if visible == "bernoulli" else num_h
    out[f"{name}/log_z_exact"] = (exact, f"nats, exact log Z (enumeration of 2^{n_states} "
                                         f"states)")

  # Per-example unnormalized values through the family's eval_fn, averaged with their s.e.
  metric, target = (("neg_free_energy", "log_px") if config.family == "rbm" else
                    ("bound_plus_log_z", "log_px_lower_bound"))
  sub = ml_collections.ConfigDict(dict(
      type="likelihood", batch_size=ec.batch_size, num_examples=s["num_examples"],
      split=s["split"], kwargs=dict(samples=s["samples"]) if config.family == "dbn" else {}))
  means = likelihood.mean_over_split(ctx, name, sub)
  mean, sem = means[f"{name}/{metric}"][0], means[f"{name}/{metric}_sem"][0]
  where = means[f"{name}/{metric}"][1].split("; ")[-1]
  what = ("test log p(v) = -F(v) - log Z^" if config.family == "rbm" else
          f"variational lower bound on test log p(v) (upward samples per example: "
          f"{s['samples']}) with log Z^ of the top RBM")
  out[f"{name}/{target}"] = (mean - log_z, f"nats per example, {what}, {how}; {where}")
  out[f"{name}/{target}_sem"] = (math.hypot(sem, log_z_se),
                                 "standard error: sqrt(s.e. over examples^2 + s.e. of log Z^^2)")
  out[f"{name}/{target}_sem_examples"] = (sem, "standard error over test examples alone")
  if exact is not None:
    exact_what = ("test log p(v) = -F(v) - log Z" if config.family == "rbm" else
                  "variational lower bound on test log p(v) with log Z of the top RBM")
    out[f"{name}/{target}_exact"] = (mean - exact, f"nats per example, {exact_what}, log Z "
                                                   f"EXACT (enumeration); {where}")
  if s["raise_examples"]:
    out.update(_raise(ctx, name, s, base, top, visible, log_z, target))
  if sha:
    out[f"{name}/train_sha256"] = (sha, f"SHA-256 of the {n_train} model-space training "
                                        f"examples' bits (np.packbits per example, stored order; "
                                        f"variant {ctx.data.variant})")
  return out


@partial(jax.jit, static_argnames=("family",))
def _raise_inputs(params, rng, v, family: str):
  return FAMILIES[family].raise_inputs(params, rng, v)


def _raise(ctx, name: str, s: dict, base, top, visible: str, log_z: float, target: str) -> dict:
  """RAISE and AIS estimates over the first raise_examples test examples.

  The top RBM's visible states are the examples themselves (rbm) or one upward
  sample h ~ q per example (dbn, whose bound adds the lower layers' terms);
  RAISE replaces log p_top(h) = -F_top(h) - log Z^ by its estimate.
  """
  x, _ = _model_space(ctx, s["split"] or ctx.data.eval_split)
  h, offset = (np.asarray(a, np.float64) for a in _raise_inputs(
      ctx.params, ctx.key(name, "raise", "up"), jnp.asarray(x[:s["raise_examples"]]),
      ctx.config.family))
  betas = ais.schedule(s["raise_schedule"], s["raise_num_betas"])
  lp = offset + np.asarray(ais.raise_log_prob(ctx.key(name, "raise"), base, top, betas,
                                              jnp.asarray(h, np.float32), s["raise_chains"],
                                              visible), np.float64)
  ais_lp = offset - _free_energy_np(top, h, visible) - log_z
  n = len(lp)
  how = (f"RAISE (reverse AIS from each test example's top-RBM state): {s['raise_chains']} "
         f"chain(s) x {len(betas):,} inverse temperatures ('{s['raise_schedule']}'), the first "
         f"{n} test examples; a stochastic lower bound on the log-probability under the "
         f"annealed model q (conservative for p only if the annealing mixes)")
  if ctx.config.family == "dbn":
    how += ", one upward sample per example"
  diff = lp - ais_lp
  sem = lambda a: float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0  # noqa: E731
  return {
      f"{name}/raise_{target}": (float(lp.mean()), f"nats per example, {how}"),
      f"{name}/raise_{target}_sem": (sem(lp), "standard error over those examples"),
      f"{name}/ais_{target}_raise_examples": (
          float(ais_lp.mean()), f"nats per example, AIS estimate on the same {n} examples (and "
                                f"upward samples)"),
      f"{name}/raise_minus_ais": (
          float(diff.mean()), f"nats per example, RAISE - AIS on the same {n} examples: ~0 "
                              f"when both are accurate; < 0 suggests AIS over-estimates, "
                              f"> 0 that the annealed model q puts more mass on the data "
                              f"than p (chains that do not mix)"),
      f"{name}/raise_minus_ais_sem": (sem(diff), "standard error of the paired difference"),
  }
