"""The expectation-maximization trainer: one train step is one EM iteration.

Each step takes the whole training split as one global batch (data.batch_size
= 0: `pipeline.WholeSplit`, sharded over the data axis like any batch, with a
"weight" field that is 0 on padding rows). The family's `em.e_step` returns
sums of sufficient statistics over the batch, so under jit XLA reduces them
across devices and hosts: one E-step on the sharded split is one E-step on
the whole of it, and EM scales like the SGD trainer. `em.m_step` then sets the
parameters in closed form. Iterations are the loop's steps, compiled once
(with steps_per_dispatch = k, k iterations run in one lax.scan), never
re-traced per call.

Logged per step: "loss" = -"loglik", the log-likelihood per example (nats) of
the parameters the step starts from (the E-step's); "objective" = (loglik +
log prior) per example, which is what EM maximizes (= loglik for ML
families); "loglik_change", the objective's change from the previous step;
and "converged". EM never lowers the objective; a decrease larger than
`config.em.decrease_tol` nats per example is printed as a warning naming the
step, never hidden. Once a change is smaller than `config.em.tol`, the state
is frozen (later steps change nothing) and the loop stops at its next check;
`tol = 0` runs every step. An M-step that gives non-finite parameters (a
collapsed covariance with no floor) is not applied: the run stops with one
line naming the step and the floor to raise, before anything after it is
saved. Resume is bit-identical: the state holds the last
log-likelihood and the converged flag, and the data are the same every step.
"""
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors, types
from gen_jax.data import spec as spec_lib


def make(family: types.Family, config) -> types.Trainer:
  if family.em is None:
    raise errors.ConfigError(
        f"family {config.family!r} has no closed-form EM; use trainer 'sgd'")
  tol, decrease_tol = float(config.em.tol), float(config.em.decrease_tol)
  em = family.em

  def init(rng, batch):
    params, state = family.init(rng, batch)
    dtype = types.real_dtype()
    opt_state = {"objective": jnp.full((), -jnp.inf, dtype), "converged": jnp.zeros((), bool)}
    return types.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                            opt_state=opt_state, state=state, ema=None)

  def step(ts: types.TrainState, batch, rng):
    del rng   # EM is deterministic given the data
    x = next(iter(batch.values()))
    weights = batch.get(spec_lib.WEIGHT, jnp.ones(x.shape[:1], jnp.float32))
    weights = weights.astype(types.real_dtype())
    stats = em.e_step(ts.params, ts.state, batch, weights)
    loglik = stats["loglik"] / stats["count"]
    objective = (stats["loglik"] + stats.get("log_prior", 0.0)) / stats["count"]
    params, state = em.m_step(ts.params, ts.state, stats)
    # Non-finite values in the new parameters, or in those the step started from (the
    # initial M-step of a family's init, e.g. a zero variance with no floor).
    nonfinite = sum(jnp.sum(~jnp.isfinite(leaf))
                    for leaf in jax.tree.leaves((params, state, ts.params))
                    if jnp.issubdtype(leaf.dtype, jnp.inexact))
    prev, done = ts.opt_state["objective"], ts.opt_state["converged"]
    failed = nonfinite > 0
    done_or_failed = done | failed
    change = jnp.where(jnp.isfinite(prev), objective - prev, jnp.inf)
    converged = done | ((tol > 0) & (jnp.abs(change) < tol))
    keep = lambda old, new: jax.tree.map(lambda o, n: jnp.where(done_or_failed, o, n), old, new)
    params, state = keep(ts.params, params), keep(ts.state, state)
    metrics = {"loss": -loglik, "loglik": loglik, "objective": objective,
               "loglik_change": jnp.where(jnp.isfinite(change), change, 0.0),
               "converged": converged.astype(jnp.float32),
               "m_step_nonfinite": jnp.asarray(nonfinite, jnp.float32)}
    opt_state = {"objective": jnp.where(done, prev, objective).astype(prev.dtype),
                 "converged": converged}
    return types.TrainState(step=ts.step + 1, params=params, opt_state=opt_state,
                            state=state, ema=None), metrics

  what = "objective (log-likelihood + log prior)"

  def monitor(first_step: int, metrics: dict):
    """Warnings for decreases beyond decrease_tol, and the step EM converged at."""
    change = np.asarray(metrics["loglik_change"])
    objective = np.asarray(metrics["objective"])
    warnings = [
        f"EM {what} per example fell by {-change[i]:.3g} nats at step {first_step + i + 1} "
        f"(to {objective[i]:.6g}; em.decrease_tol={decrease_tol:g}): float rounding (try "
        f"--config.x64=True) or an M-step that does not maximize"
        for i in np.flatnonzero(change < -decrease_tol)]
    bad = np.flatnonzero(np.asarray(metrics["m_step_nonfinite"]) > 0)
    if len(bad):
      raise errors.NonFiniteLossError(
          f"EM's M-step gave {int(metrics['m_step_nonfinite'][bad[0]])} non-finite parameter "
          f"values at step {first_step + bad[0] + 1} (a collapsed covariance or an empty "
          f"component); training stopped and nothing after it is saved: raise the family's "
          f"floor (e.g. --config.model.reg_covar, min_variance or pseudo_count)")
    done = np.flatnonzero(np.asarray(metrics["converged"]) > 0)
    return warnings, (first_step + int(done[0]) + 1 if len(done) else None)

  return types.Trainer(init=init, step=step, monitor=monitor)
