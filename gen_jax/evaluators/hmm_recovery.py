"""Recovery of a known HMM: Viterbi state accuracy and parameter error up to label permutation.

For the sequence datasets of `gen_jax.data.hmm_data` (which hold the true
hidden `states` and whose generating parameters `hmm_data.true_params` gives).
On the eval split, every sequence is decoded by Viterbi under the learned
parameters and under the true ones. The learned states are matched to the
true ones by the permutation that maximises agreement (Hungarian algorithm,
scipy's linear_sum_assignment, on the confusion counts summed over all valid
steps), and the same matching aligns the parameters.

Config keys (`config.evals.<name>`): type "hmm_recovery"; split (default
data.eval_split); batch_size (sequences per jitted call).
Results (`<name>/<key>`):
  viterbi_accuracy       fraction of valid steps whose matched Viterbi state is
                         the true state (learned parameters)
  viterbi_accuracy_true  the same with the true parameters (the ceiling; 0.796
                         for hmmlearn on the T = 1e5 casino)
  log_px_per_step        exact log p(x) per step, learned parameters (nats)
  log_px_per_step_true   the same under the true parameters (nats)
  trans_max_error, start_max_error and emission_max_error (casino) or
  means_max_error / vars_max_error (Gaussian): max |learned - true| over the
  matched entries (only when the model has as many states as the truth).
"""
import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from gen_jax import errors, parallel
from gen_jax.data import hmm_data, pipeline, variants
from gen_jax.models import hmm


def check(name: str, ec, config) -> None:
  """Fails before training on a dataset without a known truth or a bad batch size."""
  if config.data.name not in hmm_data.NAMES:
    raise errors.ConfigError(
        f"evals.{name} (hmm_recovery) needs an HMM dataset with known parameters "
        f"({', '.join(hmm_data.NAMES)}); data.name is {config.data.name!r}")
  if config.family != "hmm":
    raise errors.ConfigError(f"evals.{name} (hmm_recovery) scores family 'hmm' (got "
                             f"{config.family!r})")
  batch = ec.get("batch_size")
  if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
    raise errors.ConfigError(f"evals.{name}.batch_size must be an integer >= 1 (got {batch!r})")


def true_model_params(truth: dict, dtype) -> dict:
  """hmm_data.true_params (probabilities) as params["model"] of gen_jax.models.hmm."""
  with np.errstate(divide="ignore"):
    p = {"start_logits": np.log(truth["start"]), "trans_logits": np.log(truth["trans"])}
    if "emission" in truth:
      p["emit_logits"] = np.log(truth["emission"])
    else:
      p.update(means=truth["means"], log_vars=np.log(truth["vars"]))
  return {k: jnp.asarray(v, dtype) for k, v in p.items()}


def match(confusion: np.ndarray) -> np.ndarray:
  """perm[i] = the true state matched to learned state i (-1: unmatched), maximising the
  summed confusion counts confusion[i, perm[i]]."""
  rows, cols = optimize.linear_sum_assignment(-np.asarray(confusion, np.float64))
  perm = np.full(confusion.shape[0], -1)
  perm[rows] = cols
  return perm


def evaluate(ctx, name: str, ec) -> dict:
  split = ctx.split(ec.get("split", ""))
  for field in ("obs", "states"):
    if field not in split.arrays:
      raise errors.DataError(f"hmm_recovery needs the field {field!r}; {split.where} has "
                             f"{', '.join(split.arrays)}")
  truth = hmm_data.true_params(ctx.data.name, dict(ctx.data.get("options", {})))
  params = ctx.params["model"]
  k_model, k_true = params["start_logits"].shape[0], truth["start"].shape[0]
  true_p = true_model_params(truth, params["start_logits"].dtype)
  variant, spec, base = split.variant, split.spec, ctx.key(name)

  @jax.jit
  def fn(params, batch, mask, i):
    batch = variants.apply_batch(variant, batch, spec, jax.random.fold_in(base, i))
    obs, states = batch["obs"], batch["states"]
    length = batch.get("length")
    n = (jnp.full(obs.shape[:1], obs.shape[1]) if length is None else length)
    valid = (jnp.arange(obs.shape[1])[None, :] < n[:, None]) & (mask[:, None] > 0)
    out = {}
    for tag, p, k in (("", params, k_model), ("_true", true_p, k_true)):
      path, _ = hmm.viterbi(p, obs, length)
      pairs = jax.nn.one_hot(path, k)[..., :, None] * jax.nn.one_hot(states, k_true)[..., None, :]
      out["confusion" + tag] = jnp.sum(pairs * valid[..., None, None], axis=(0, 1))
      out["log_px" + tag] = jnp.sum(hmm.log_px(p, obs, length) * mask)
    out["steps"] = jnp.sum(valid)
    return out

  sums = {}
  for i, (b, mask) in enumerate(pipeline.eval_batches(split.arrays, ec.batch_size,
                                                       jax.process_index(),
                                                       jax.process_count())):
    b = {k: parallel.to_global(v, ctx.mesh) for k, v in b.items()}
    out = parallel.to_host(fn(ctx.params["model"], b, parallel.to_global(mask, ctx.mesh),
                              jnp.uint32(i)))
    for key, v in out.items():
      sums[key] = sums.get(key, 0.0) + np.asarray(v, np.float64)
  steps = float(sums["steps"])
  perm = match(sums["confusion"])
  hit = sum(sums["confusion"][i, j] for i, j in enumerate(perm) if j >= 0)
  where = f"{split.where}, {int(steps)} steps"
  res = {
      f"{name}/viterbi_accuracy": (hit / steps, f"fraction of valid steps, learned states "
                                                f"matched to true ones (Hungarian); {where}"),
      f"{name}/viterbi_accuracy_true": (float(np.trace(sums["confusion_true"])) / steps,
                                        f"fraction of valid steps, true parameters; {where}"),
      f"{name}/log_px_per_step": (float(sums["log_px"]) / steps,
                                  f"nats per step, exact, learned parameters; {where}"),
      f"{name}/log_px_per_step_true": (float(sums["log_px_true"]) / steps,
                                       f"nats per step, exact, true parameters; {where}"),
  }
  if k_model == k_true:
    res.update(_param_errors(name, hmm.probabilities(jax.device_get(params)), truth, perm))
  return res


def _param_errors(name: str, learned: dict, truth: dict, perm: np.ndarray) -> dict:
  """max |learned - true| per parameter, learned states relabelled by `perm`."""
  inv = np.argsort(perm)                 # inv[true state] = its learned state
  aligned = {"start": np.asarray(learned["start"])[inv],
             "trans": np.asarray(learned["trans"])[np.ix_(inv, inv)]}
  for key in ("emission", "means", "vars"):
    if key in learned and key in truth:
      aligned[key] = np.asarray(learned[key])[inv]
  unit = "max abs difference after matching states"
  out = {}
  for key, value in aligned.items():
    err = float(np.max(np.abs(value.astype(np.float64) - truth[key])))
    out[f"{name}/{key}_max_error"] = (err, unit)
  return out

