"""How close a learned Bayesian network is to the true one: likelihood and posterior queries.

type "bn_queries", for the "bayes_net" family on data sampled from a known
network (dataset "bnlearn"). On the eval split it reports, exactly (VE):
  log_px_learned, log_px_true   held-out log p(x_obs) per case under the learned
                                CPDs and under the true network (the ceiling),
                                nats, with standard errors; gap = true - learned
  query_kl, query_abs_err       posterior marginal queries P(q | evidence) for
                                the first `num_queries` cases: evidence = their
                                values of the `evidence` variables (default:
                                every observed leaf), q = each `query` variable
                                (default: every observed root that is not
                                evidence); KL(true || learned) in nats and the
                                mean |P_true - P_learned| over states, averaged
                                over cases and query variables
  queries_per_s, compile_s      batched VE throughput of those queries on the
                                learned network (one jitted call answers every
                                marginal of every case: VE's forward pass and
                                its gradient, see variable_elimination.marginals),
                                timed after compilation, and the compile time
  max_query_bytes               the largest intermediate table of those plans
                                for one evidence set (estimated before running)
Config keys: split (default data.eval_split), num_examples (0 = all, for the
log-likelihoods), num_queries (default 1000), evidence / query (lists of
names; default leaves / roots), batch_size (cases per VE call, default 1000).
The true network is data.options.network (or data.path), falling back to
model.network.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors, types
from gen_jax.data import bif
from gen_jax.inference import variable_elimination as ve
from gen_jax.models import bayes_net


def _true_network(config) -> bif.Network:
  name = config.data.get("options", {}).get("network", "") or bayes_net.option(
      config.model, "network")
  return bif.find(str(name), config.data.get("path", ""))


def _same_structure(a: ve.Graph, b: ve.Graph) -> None:
  if (a.names, a.states, a.parents) != (b.names, b.states, b.parents):
    raise errors.ConfigError("evaluator 'bn_queries': the model's network and the data's true "
                             "network differ in variables, states or parents")


def _mean_sem(v: np.ndarray) -> tuple:
  v = np.asarray(v, np.float64)
  return float(v.mean()), float(v.std() / np.sqrt(max(len(v), 1)))


def evaluate(ctx, name: str, ec) -> dict:
  config = ctx.config
  true_net = _true_network(config)
  graph = true_net.graph
  _same_structure(graph, bayes_net.network(config).graph)
  hidden = bayes_net.hidden_ids(config, graph)
  split = ctx.split(ec.get("split", ""))
  field, columns, observed, obs_cols = bayes_net.layout(
      split.spec, graph, hidden)
  x = np.asarray(split.arrays[field])
  if ec.get("num_examples", 0):
    x = x[:ec.num_examples]
  ev_all = x[:, list(obs_cols)].astype(np.int32)
  dtype = types.real_dtype()
  itemsize = np.dtype(dtype).itemsize
  learned = [jnp.asarray(t, dtype) for t in bayes_net.log_tables(ctx.params)]
  true = [jnp.asarray(t) for t in true_net.log_cpts(dtype)]
  batch = int(ec.get("batch_size", 1000))
  where = f"{split.where}, {len(x)} cases"
  out = {}

  # Held-out log-likelihood, learned vs true.
  lp_plan = ve.make_plan(graph, (), observed, batch=batch, itemsize=itemsize)
  lp_fn = jax.jit(lambda t, v: ve.log_evidence(lp_plan, t, v))
  lps = {}
  for key, tables in (("learned", learned), ("true", true)):
    lps[key] = np.concatenate([np.asarray(lp_fn(tables, jnp.asarray(ev_all[i:i + batch])))
                               for i in range(0, len(ev_all), batch)])
    mean, sem = _mean_sem(lps[key])
    out[f"{name}/log_px_{key}"] = (mean, f"nats per case, exact (VE), {key} CPDs; mean over "
                                         f"{where}")
    out[f"{name}/log_px_{key}_sem"] = (sem, "standard error of the mean")
  gap, gap_sem = _mean_sem(lps["true"] - lps["learned"])
  out[f"{name}/gap"] = (gap, "nats per case, log p_true - log p_learned (>= 0 in expectation)")
  out[f"{name}/gap_sem"] = (gap_sem, "standard error of the mean (paired)")

  # Posterior marginal queries with leaf evidence.
  ev_vars = _names(graph, ec.get("evidence", ()), [v for v in graph.leaves() if v in observed])
  q_vars = _names(graph, ec.get("query", ()), [v for v in graph.roots() if v in observed
                                               and v not in ev_vars])
  q_vars = [v for v in q_vars if v not in ev_vars]
  n_q = min(int(ec.get("num_queries", 1000)), len(x))
  if not ev_vars or not q_vars or n_q < 1:
    return out
  cols = [columns.index(v) for v in ev_vars]
  values = jnp.asarray(x[:n_q, cols].astype(np.int32))
  # Every marginal given the evidence from one forward-backward VE pass per case.
  plan = ve.make_plan(graph, (), tuple(ev_vars), prune=False, batch=n_q, itemsize=itemsize)
  fn = jax.jit(lambda t, v: ve.marginals(plan, t, v))
  t0 = time.perf_counter()
  jax.block_until_ready(fn(learned, values))
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  _, post_l = jax.block_until_ready(fn(learned, values))
  run = time.perf_counter() - t0
  z_t, post_t = fn(true, values)
  ve.check_possible(plan, z_t, np.asarray(values))
  kls, errs = [], []
  for q in q_vars:
    p_l, p_t = np.asarray(post_l[q], np.float64), np.asarray(post_t[q], np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
      kl = np.where(p_t > 0, p_t * (np.log(p_t) - np.log(np.maximum(p_l, 1e-300))), 0.0)
    kls.append(kl.sum(-1))
    errs.append(np.abs(p_t - p_l).mean(-1))
  n_queries = n_q * len(q_vars)
  desc = (f"{n_queries} queries P(root | {len(ev_vars)} leaves) = {len(q_vars)} query variables "
          f"x {n_q} cases of {split.where}")
  out[f"{name}/query_kl"] = (float(np.mean(kls)), f"nats, KL(true || learned), mean over {desc}")
  out[f"{name}/query_abs_err"] = (float(np.mean(errs)),
                                  f"mean |P_true - P_learned| over states and {desc}")
  out[f"{name}/queries_per_s"] = (
      n_queries / max(run, 1e-9), f"batched VE on {jax.devices()[0].platform} (all marginals of "
      f"a case in one forward-backward pass), after compilation")
  out[f"{name}/compile_s"] = (max(first - run, 0.0), "seconds to trace and compile that program")
  out[f"{name}/max_query_bytes"] = (float(max(plan.bytes(1, itemsize),
                                              lp_plan.bytes(1, itemsize))),
                                    "bytes, largest VE table for one evidence set (estimate, "
                                    "forward pass)")
  return out


def _names(graph: ve.Graph, given, default) -> list:
  if given:
    given = (given,) if isinstance(given, str) else tuple(given)
    return [graph.index(n) for n in given]
  return list(default)
