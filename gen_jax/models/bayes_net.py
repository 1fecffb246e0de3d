"""Discrete Bayesian networks of known structure: CPDs learned by EM or by SGD.

Model: p(x) = prod_v P(x_v | x_pa(v)), the structure read from a BIF file
(`config.model.network`: "asia" embedded, a bnlearn name or a .bif[.gz] path,
resolved by gen_jax.data.bif.find; data.path, when set, is that file).
Parameters ({"model": {"logits": [f[*parent cards, card_v] per variable]}})
are unnormalized log-probabilities, P(x_v | u) = softmax(logits_v[u]), so
any value is valid and the SGD trainer can fit the same family.

Data: a "table" field i32[B, K] (gen_jax.data.bn_data), one column per
variable (K = V; hidden columns hold anything, e.g. -1) or one per observed
variable (K = V - |hidden|, hidden columns absent). `config.model.hidden`
names the unobserved variables; they are summed out exactly.

log p(x_obs) is computed by variable elimination (gen_jax.inference), one
static plan for the observed set, vmapped over cases; with complete data it
is the sum of one gathered log CPT entry per variable.

EM (`types.EM`): the E-step returns, summed over cases with weights w_i,
  counts[v][u, x] = sum_i w_i P(X_v = x, pa_v = u | x_obs,i),
the observed counts for complete data and the posterior expected family
counts with hidden variables, both from one backward pass of VE (the
gradient of sum_i w_i log p(x_obs,i) w.r.t. the log CPT entries, see
variable_elimination.expected_counts). The M-step is the closed form
  P(x | u) = (counts[u, x] + a) / sum_x' (counts[u, x'] + a),
MLE for a = `pseudo_count` = 0, else MAP under a Dirichlet(a + 1) prior on
every CPT row (whose log density, sum a log P, is the E-step's "log_prior",
so EM is monotone in the log posterior). A parent configuration never seen
(zero total) gets the uniform row; probabilities are floored at `min_prob`
before the log so no logit is -inf.

Config (config.model), with defaults:
  network       "asia"
  hidden        ()      names of unobserved variables
  pseudo_count  0.0     Dirichlet pseudo-count a per CPT entry (EM's MAP)
  init_scale    0.0     logits ~ init_scale * N(0, 1); > 0 is needed with
                        hidden variables (a symmetric start is a fixed point of EM)
  min_prob      1e-10   floor of M-step probabilities
  order         "min_fill"  elimination heuristic (variable_elimination.HEURISTICS)
  max_bytes     2 GiB   refuse plans whose largest table per case exceeds this
  chunk         0       cases per vmapped VE call (0 = the whole batch)

`eval_fn` gives `log_px`: log p(x_obs) per case in nats, exact. `sample` draws
ancestral samples i32[n, K] in the data's column layout.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax import errors, types
from gen_jax.data import bif
from gen_jax.data import spec as spec_lib
from gen_jax.inference import bn_sampling
from gen_jax.inference import variable_elimination as ve

DEFAULTS = dict(network="asia", hidden=(), pseudo_count=0.0, init_scale=0.0, min_prob=1e-10,
                order="min_fill", max_bytes=ve.DEFAULT_MAX_BYTES, chunk=0)


def option(m, key: str):
  """config.model[key], or its documented default."""
  return m.get(key, DEFAULTS[key])


def network(config: ml_collections.ConfigDict) -> bif.Network:
  """The network whose structure the family uses (model.network, or data.path)."""
  return bif.find(str(option(config.model, "network")), config.data.get("path", ""))


def hidden_ids(config, graph: ve.Graph) -> tuple:
  hidden = option(config.model, "hidden")
  hidden = (hidden,) if isinstance(hidden, str) else tuple(hidden)
  ids = tuple(graph.index(h) for h in hidden)
  if len(set(ids)) != len(ids):
    raise errors.ConfigError(f"model.hidden names a variable twice: {list(hidden)}")
  return ids


def log_tables(params) -> list:
  """Normalized log CPTs [f[*parent cards, card_v] per variable] from the params."""
  return [jax.nn.log_softmax(z, axis=-1) for z in params["model"]["logits"]]


def layout(spec: dict, graph: ve.Graph, hidden: tuple) -> tuple:
  """(field name, variable of each data column, observed variables, their columns)."""
  field = spec_lib.of_field(spec, "table")
  if field is None:
    raise errors.ConfigError(f"bayes_net needs a discrete table field (dataset 'bnlearn'); the "
                             f"data has {spec_lib.describe(spec)}")
  f = spec[field]
  v_all = graph.num_variables
  observed = tuple(v for v in range(v_all) if v not in hidden)
  k = f.shape[0] if f.shape else 0
  if k == v_all:
    columns = tuple(range(v_all))
  elif k == len(observed):
    columns = observed
  else:
    raise errors.ConfigError(
        f"the data has {k} columns; the network has {v_all} variables ({len(hidden)} hidden): "
        f"give one column per variable or per observed variable")
  cards = tuple(f.cardinality) if isinstance(f.cardinality, (tuple, list)) else ()
  if cards:
    for c, v in enumerate(columns):
      if int(cards[c]) != graph.cards[v]:
        raise errors.ConfigError(
            f"data column {c} has {cards[c]} values but variable {graph.names[v]!r} has "
            f"{graph.cards[v]} states: the data come from another network")
  obs_cols = tuple(columns.index(v) for v in observed)
  return field, columns, observed, obs_cols


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  m = config.model
  net = network(config)
  graph = net.graph
  hidden = hidden_ids(config, graph)
  field, columns, observed, obs_cols = layout(spec, graph, hidden)
  a = float(option(m, "pseudo_count"))
  init_scale = float(option(m, "init_scale"))
  min_prob = float(option(m, "min_prob"))
  order = option(m, "order")
  order = order if isinstance(order, str) else tuple(order)
  max_bytes = int(option(m, "max_bytes"))
  chunk = int(option(m, "chunk"))
  if a < 0 or not 0 < min_prob < 1:
    raise errors.ConfigError(f"model.pseudo_count must be >= 0 and model.min_prob in (0, 1) "
                             f"(got {a}, {min_prob})")
  if hidden and init_scale <= 0:
    raise errors.ConfigError(
        "model.hidden needs model.init_scale > 0: from uniform CPDs every state of a hidden "
        "variable looks the same and EM cannot break the symmetry")
  itemsize = np.dtype(types.real_dtype()).itemsize
  plan_kw = dict(order=order, max_bytes=max_bytes, batch=max(chunk, 1), itemsize=itemsize)
  lp_plan = ve.make_plan(graph, (), observed, prune=True, **plan_kw)
  es_plan = ve.make_plan(graph, (), observed, prune=False, **plan_kw)

  def values(batch):
    return batch[field][:, jnp.asarray(obs_cols, jnp.int32)].astype(jnp.int32)

  def log_px(params, batch):
    """log p(x_obs) per case: f[B] (nats)."""
    return ve.log_evidence(lp_plan, log_tables(params), values(batch), chunk)

  def init(rng, batch):
    del batch
    dtype = types.real_dtype()
    logits = [init_scale * jax.random.normal(jax.random.fold_in(rng, v),
                                             tuple(graph.cards[u] for u in graph.scope(v)), dtype)
              for v in range(graph.num_variables)]
    return {"model": {"logits": logits}}, {}

  def loss(player, params, state, batch, rng):
    del player, rng
    return -jnp.mean(log_px(params, batch)), (state, {})

  def eval_fn(params, state, batch, rng, **kw):
    del state, rng, kw
    return {"log_px": log_px(params, batch)}

  def sample(params, state, rng, n):
    del state
    x = bn_sampling.ancestral(graph, log_tables(params), rng, n)
    return x[:, jnp.asarray(columns, jnp.int32)]

  def e_step(params, state, batch, weights):
    del state
    tables = log_tables(params)
    weights = weights.astype(tables[0].dtype)
    loglik, counts = ve.expected_counts(es_plan, tables, values(batch), weights, chunk)
    stats = {"loglik": loglik, "count": jnp.sum(weights), "counts": counts}
    if a > 0:
      stats["log_prior"] = a * sum(jnp.sum(t) for t in tables)
    return stats

  def m_step(params, state, stats):
    del params
    logits = []
    for c in stats["counts"]:
      c = c + a
      total = jnp.sum(c, axis=-1, keepdims=True)
      p = jnp.where(total > 0, c / jnp.where(total > 0, total, 1.0), 1.0 / c.shape[-1])
      logits.append(jnp.log(jnp.maximum(p, min_prob)))
    return {"model": {"logits": logits}}, state

  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      eval_units={"log_px": "nats per case, exact" + (
          f" ({len(hidden)} hidden variables summed out)" if hidden else "")},
      sample_field=field, em=types.EM(e_step, m_step))
