"""Sampling in discrete Bayesian networks, in pure JAX: ancestral, likelihood weighting, Gibbs.

The network is a `variable_elimination.Graph` (static) and one log CPT per
variable (`log_cpts[v]: f[*parent cards, card_v]`). Variables are visited in
topological order by a Python loop over the (static) nodes at trace time, so
each sampler is one jitted program; Gibbs sweeps run in `lax.scan`.

- `ancestral`: x_v ~ P(x_v | x_pa(v)) in topological order: exact samples of
  the joint.
- `likelihood_weighting`: the same with the evidence variables clamped, each
  sample weighted by prod_{v in E} P(e_v | x_pa(v)) (log weights returned);
  `weighted_marginals` gives the self-normalized estimate of every marginal.
- `gibbs`: single-site Gibbs with evidence. Chains start from likelihood-
  weighted samples resampled by their weights (so they start where the
  evidence is possible); one sweep resamples every unobserved variable in
  topological order from its Markov-blanket conditional
      P(x_v | rest) ∝ P(x_v | x_pa(v)) prod_{c in children(v)} P(x_c | x_pa(c)).
  The estimate averages one-hot states over chains and the sweeps after
  burn-in (Rao-Blackwellized: the conditional probabilities themselves are
  averaged, which has lower variance than the states). Deterministic CPDs can
  make single-site Gibbs reducible; check against `variable_elimination` on
  such networks.
"""
import functools
from typing import Sequence

import jax
import jax.numpy as jnp

from gen_jax.inference import variable_elimination as ve


def _row(log_cpt, x, parents: tuple):
  """log P(x_v = . | x_pa): f[N, card_v] from states x: i32[N, V]."""
  return log_cpt[tuple(x[:, u] for u in parents)] if parents else jnp.broadcast_to(
      log_cpt, (x.shape[0],) + log_cpt.shape)


@functools.partial(jax.jit, static_argnums=(0, 3))
def ancestral(graph: ve.Graph, log_cpts: Sequence, rng, n: int):
  """n exact samples of the joint: i32[n, V] (columns in graph order)."""
  x = jnp.zeros((n, graph.num_variables), jnp.int32)
  for v in graph.topological_order:
    logits = _row(log_cpts[v], x, graph.parents[v])
    x = x.at[:, v].set(jax.random.categorical(jax.random.fold_in(rng, v), logits, axis=-1))
  return x


@functools.partial(jax.jit, static_argnums=(0, 2, 5))
def likelihood_weighting(graph: ve.Graph, log_cpts: Sequence, evidence: tuple, values, rng,
                         n: int):
  """Likelihood-weighted samples given evidence.

  Args:
    graph, log_cpts: the network.
    evidence: evidence variable ids (static); values: i32[|E|] their states.
    rng: key; n: samples (static).

  Returns:
    (x i32[n, V] with evidence columns clamped, log_w f[n] = sum over evidence
    variables of log P(e_v | x_pa(v))).
  """
  evpos = {u: i for i, u in enumerate(evidence)}
  x = jnp.zeros((n, graph.num_variables), jnp.int32)
  log_w = jnp.zeros((n,), log_cpts[0].dtype)
  for v in graph.topological_order:
    logits = _row(log_cpts[v], x, graph.parents[v])
    if v in evpos:
      e = values[evpos[v]]
      x = x.at[:, v].set(e)
      log_w = log_w + logits[:, e]
    else:
      x = x.at[:, v].set(jax.random.categorical(jax.random.fold_in(rng, v), logits, axis=-1))
  return x, log_w


def weighted_marginals(graph: ve.Graph, x, log_w) -> list:
  """Self-normalized marginal estimates [f[card_v] per variable] from weighted samples."""
  w = jax.nn.softmax(log_w)
  return [jnp.zeros((c,), w.dtype).at[x[:, v]].add(w) for v, c in enumerate(graph.cards)]


def _blanket_logits(graph: ve.Graph, log_cpts: Sequence, x, v: int):
  """log P(x_v = . | Markov blanket) up to a constant: f[N, card_v]."""
  logits = _row(log_cpts[v], x, graph.parents[v])
  states = jnp.arange(graph.cards[v])
  for c in graph.children[v]:
    idx = tuple(states[None, :] if u == v else x[:, u][:, None] for u in graph.scope(c)[:-1])
    logits = logits + log_cpts[c][idx + (x[:, c][:, None],)]
  return logits


@functools.partial(jax.jit, static_argnums=(0, 2, 5, 6, 7))
def gibbs(graph: ve.Graph, log_cpts: Sequence, evidence: tuple, values, rng,
          num_chains: int, num_sweeps: int, burn_in: int = 0):
  """Gibbs sampling with evidence: marginal estimates of every variable.

  Args:
    graph, log_cpts: the network.
    evidence: evidence variable ids (static); values: i32[|E|] their states.
    rng: key.
    num_chains, num_sweeps, burn_in: chains run in parallel; sweeps per chain
      (lax.scan); the first `burn_in` sweeps are not averaged (all static).

  Returns:
    (marginals [f[card_v] per variable], x i32[num_chains, V] the final states).
    Each marginal averages the Markov-blanket conditionals over chains and the
    num_sweeps - burn_in kept sweeps; evidence variables are one-hot.
  """
  evset = set(evidence)
  free = tuple(v for v in graph.topological_order if v not in evset)
  r_init, r_pick, r_run = jax.random.split(rng, 3)
  pool, log_w = likelihood_weighting(graph, log_cpts, evidence, values, r_init, num_chains)
  pick = jax.random.categorical(r_pick, log_w, shape=(num_chains,))
  x0 = pool[pick]
  dtype = log_cpts[0].dtype
  zeros = [jnp.zeros((c,), dtype) for c in graph.cards]

  def sweep(carry, t):
    x, acc = carry
    key = jax.random.fold_in(r_run, t)
    acc = list(acc)
    keep = (t >= burn_in).astype(dtype)
    for v in free:
      logits = _blanket_logits(graph, log_cpts, x, v)
      x = x.at[:, v].set(jax.random.categorical(jax.random.fold_in(key, v), logits, axis=-1))
      acc[v] = acc[v] + keep * jnp.sum(jax.nn.softmax(logits, axis=-1), axis=0)
    return (x, tuple(acc)), None

  (x, acc), _ = jax.lax.scan(sweep, (x0, tuple(zeros)), jnp.arange(num_sweeps))
  kept = max(num_sweeps - burn_in, 1) * num_chains
  marginals = [a / kept for a in acc]
  for i, v in enumerate(evidence):
    marginals[v] = jax.nn.one_hot(values[i], graph.cards[v], dtype=dtype)
  return marginals, x
