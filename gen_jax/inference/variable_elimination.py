"""Exact inference in discrete Bayesian networks by variable elimination (VE).

A network is a static `Graph` (names, states, parents) plus one log CPT per
variable, `log_cpts[v]: f[*parent cards, card_v]` (log P(x_v | parents), log 0
= -inf allowed). A query P(Q | E = e) is planned once per (query variables,
evidence variables) on the host with plain Python, then run as one jitted
program, vmapped over a batch of evidence values:

1. Pruning (exact): only ancestors of Q and E matter (barren nodes sum to 1);
   evidence variables are instantiated, which cuts their outgoing edges, and
   for a conditional query only the factors connected to Q through
   unobserved variables are kept (the others multiply P(Q, e) by a constant).
2. Order: a greedy elimination order on the interaction graph of the kept
   factors: "min_fill" (fewest fill-in edges, ties by table size),
   "min_degree" (fewest neighbours) or "min_weight" (smallest table), or an
   explicit sequence. The order changes the cost, never the answer.
3. Memory: the plan simulates the elimination and records the entries of
   the largest table it will build (`Plan.max_entries`, the tree-width in
   disguise) BEFORE anything is allocated; `make_plan` refuses, with one
   line, a query whose largest table times the batch exceeds `max_bytes`.
4. Execution in log space: each evidence variable is sliced out of its
   factors with one gather; eliminating x adds the log factors that mention x
   (broadcast over the union of their scopes) and takes a logsumexp over x,
   so no product underflows however small P(e) is.

Results are log P(Q = q, e) tables (the relevant part of the network, see 1.),
normalized by `posterior`. Impossible evidence (P(e) = 0) gives log P(e) =
-inf; the host-level `query` turns that into one clear error.

Expected counts for EM come from autodiff: with every log CPT entry treated
as a free variable theta, d log P(e) / d theta[v][u, x] = P(X_v = x, pa_v = u | e)
(one backward pass of VE, the junction-tree calibration in disguise); see
`expected_counts`, and `marginals`, which answers every single-variable
query of an evidence set in one program that way. Log-sum-exps of all -inf
slices (structural zeros) have gradient 0, so those stay finite.
"""
import dataclasses
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors

HEURISTICS = ("min_fill", "min_degree", "min_weight")
DEFAULT_MAX_BYTES = 2 ** 31   # 2 GiB for the largest intermediate table of one batched call


@dataclasses.dataclass(frozen=True)
class Graph:
  """The static structure of a discrete Bayesian network (hashable: plans are keyed by it).

  Attributes:
    names: variable names.
    states: state names of each variable.
    parents: parent indices of each variable, in the axis order of its CPT.
  """
  names: tuple
  states: tuple
  parents: tuple

  @property
  def num_variables(self) -> int:
    return len(self.names)

  @functools.cached_property
  def cards(self) -> tuple:
    return tuple(len(s) for s in self.states)

  def scope(self, v: int) -> tuple:
    """Axes of CPT v: its parents, then v."""
    return tuple(self.parents[v]) + (v,)

  @functools.cached_property
  def children(self) -> tuple:
    out = [[] for _ in self.names]
    for v, pa in enumerate(self.parents):
      for u in pa:
        out[u].append(v)
    return tuple(tuple(c) for c in out)

  @functools.cached_property
  def topological_order(self) -> tuple:
    """Parents before children (Kahn's algorithm, ties by index); raises on a cycle."""
    indeg = [len(pa) for pa in self.parents]
    ready = [v for v, d in enumerate(indeg) if d == 0]
    order = []
    while ready:
      v = ready.pop(0)
      order.append(v)
      for c in self.children[v]:
        indeg[c] -= 1
        if indeg[c] == 0:
          ready.append(c)
      ready.sort()
    if len(order) != len(self.names):
      cyc = sorted(self.names[v] for v, d in enumerate(indeg) if d > 0)
      raise errors.GenJaxError(f"the network has a directed cycle through {', '.join(cyc[:6])}")
    return tuple(order)

  @functools.cached_property
  def _index(self) -> dict:
    return {n: i for i, n in enumerate(self.names)}

  def index(self, name) -> int:
    """Variable index of a name (or an index); unknown names raise one line with the choices."""
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
      if 0 <= name < len(self.names):
        return int(name)
      raise errors.ConfigError(f"variable index {name} out of range [0, {len(self.names)})")
    if name not in self._index:
      raise errors.ConfigError(errors.choices("variable", name, self.names))
    return self._index[name]

  def state_index(self, v: int, state) -> int:
    """Index of a state (a name or an index) of variable v; raises one line with the choices."""
    states = self.states[v]
    if isinstance(state, (int, np.integer)) and not isinstance(state, bool):
      if 0 <= state < len(states):
        return int(state)
      raise errors.ConfigError(f"state index {state} of variable {self.names[v]!r} out of range "
                               f"[0, {len(states)}); states: {', '.join(states)}")
    if state not in states:
      raise errors.ConfigError(errors.choices(f"state of {self.names[v]!r}", state, states))
    return states.index(state)

  def ancestors(self, nodes) -> set:
    """`nodes` and all their ancestors."""
    out, stack = set(), list(nodes)
    while stack:
      v = stack.pop()
      if v not in out:
        out.add(v)
        stack.extend(self.parents[v])
    return out

  def roots(self) -> tuple:
    return tuple(v for v, pa in enumerate(self.parents) if not pa)

  def leaves(self) -> tuple:
    return tuple(v for v, c in enumerate(self.children) if not c)


@dataclasses.dataclass(frozen=True)
class Plan:
  """A static elimination plan for P(query | evidence variables).

  Attributes:
    graph: the network structure.
    query: query variables (axes of the result, in this order).
    evidence: evidence variables (columns of the evidence values, in this order).
    factors: CPDs (variable ids) in the product after pruning.
    order: elimination order (every unobserved, non-query variable of `factors`).
    heuristic: how `order` was chosen ("min_fill", ..., or "given").
    max_entries: entries of the largest table built for ONE evidence set
      (sliced factors, intermediate products, the result).
    largest: the variables of that table.
    joint: True: results are log P(query, e) over all of `factors`' network
      (nothing dropped); False: disconnected parts that only rescale the
      result were dropped, so only the normalized posterior is meaningful.
  """
  graph: Graph
  query: tuple
  evidence: tuple
  factors: tuple
  order: tuple
  heuristic: str
  max_entries: int
  largest: tuple
  joint: bool

  def bytes(self, batch: int = 1, itemsize: int = 4) -> int:
    """Bytes of the largest table for `batch` evidence sets of `itemsize`-byte floats."""
    return int(self.max_entries) * int(batch) * int(itemsize)

  def describe(self) -> str:
    g = self.graph
    q = ", ".join(g.names[v] for v in self.query) or "()"
    e = ", ".join(g.names[v] for v in self.evidence)
    return f"P({q}{' | ' + e if e else ''})"


def _resolve(graph: Graph, names) -> tuple:
  if isinstance(names, (str, int, np.integer)):
    names = (names,)
  return tuple(graph.index(n) for n in names)


def make_plan(graph: Graph, query=(), evidence=(), order="min_fill", prune: bool = True,
              joint: bool = False, max_bytes: int = DEFAULT_MAX_BYTES, batch: int = 1,
              itemsize: int = 4) -> Plan:
  """Plans P(query | evidence) (see the module docstring); nothing is allocated.

  Args:
    graph: the network.
    query: variable names or indices; () plans log P(e) (then joint=True).
    evidence: observed variable names or indices (their values come at run time).
    order: a heuristic in HEURISTICS or an explicit sequence of variables
      (those not eliminated by this plan are skipped).
    prune: drop barren nodes (not ancestors of query or evidence); False keeps
      every CPD (needed by `expected_counts`, whose gradient covers every CPD).
    joint: keep factors disconnected from the query (results are exact
      log P(query, e)); forced for query = ().
    max_bytes: refuse a plan whose largest table for `batch` evidence sets of
      `itemsize`-byte floats exceeds this (0 = no limit).

  Returns:
    a hashable `Plan`.
  """
  q, e = _resolve(graph, query), _resolve(graph, evidence)
  for name, vs in (("query", q), ("evidence", e)):
    if len(set(vs)) != len(vs):
      raise errors.ConfigError(f"the {name} names a variable twice: "
                               f"{', '.join(graph.names[v] for v in vs)}")
  both = set(q) & set(e)
  if both:
    raise errors.ConfigError(f"variable(s) {', '.join(graph.names[v] for v in sorted(both))} "
                             f"are both queried and observed")
  joint = joint or not q
  evset = set(e)
  keep = sorted(graph.ancestors(q + e)) if prune else list(range(graph.num_variables))
  scopes = {v: tuple(u for u in graph.scope(v) if u not in evset) for v in keep}
  if not joint:
    keep = _connected_to(q, scopes)
    scopes = {v: scopes[v] for v in keep}
  variables = set().union(*scopes.values()) if scopes else set()
  elim = variables - set(q)
  cards = graph.cards
  if isinstance(order, str):
    if order not in HEURISTICS:
      raise errors.ConfigError(errors.choices("elimination order", order, HEURISTICS))
    heuristic, seq = order, _greedy_order(order, list(scopes.values()), elim, cards)
  else:
    heuristic = "given"
    given = _resolve(graph, tuple(order))
    missing = elim - set(given)
    if missing:
      raise errors.ConfigError(
          f"the elimination order leaves out {', '.join(graph.names[v] for v in sorted(missing))}")
    seq = tuple(v for v in dict.fromkeys(given) if v in elim)
  max_entries, largest = _simulate(list(scopes.values()), seq, q, cards)
  plan = Plan(graph, q, e, tuple(keep), seq, heuristic, max_entries, largest, joint)
  need = plan.bytes(batch, itemsize)
  if max_bytes and need > max_bytes:
    raise errors.ConfigError(
        f"query {plan.describe()} needs a {_fmt_bytes(need)} table over "
        f"{len(largest)} variables ({_fmt_entries(max_entries)} entries x {batch} evidence sets,"
        f" {heuristic} order), over the limit of {_fmt_bytes(max_bytes)}: raise max_bytes, "
        f"query fewer variables together or use fewer evidence sets per call")
  return plan


def _connected_to(q: tuple, scopes: dict) -> list:
  """Factors linked to the query variables through shared unobserved variables."""
  by_var = {}
  for v, s in scopes.items():
    for u in s:
      by_var.setdefault(u, []).append(v)
  seen_vars, seen_f, stack = set(q), set(), list(q)
  while stack:
    u = stack.pop()
    for f in by_var.get(u, ()):
      if f not in seen_f:
        seen_f.add(f)
        for w in scopes[f]:
          if w not in seen_vars:
            seen_vars.add(w)
            stack.append(w)
  return sorted(seen_f)


def _greedy_order(heuristic: str, scopes: list, elim: set, cards: tuple) -> tuple:
  """Greedy elimination order on the interaction graph of `scopes`."""
  adj = {}
  for s in scopes:
    for u in s:
      adj.setdefault(u, set()).update(w for w in s if w != u)
  remaining, order = set(elim), []

  def cost(v):
    nb = adj[v]
    weight = math.prod(cards[u] for u in nb) * cards[v]
    if heuristic == "min_weight":
      return (weight, v)
    if heuristic == "min_degree":
      return (len(nb), weight, v)
    nbs = sorted(nb)
    fill = sum(1 for i, a in enumerate(nbs) for b in nbs[i + 1:] if b not in adj[a])
    return (fill, weight, v)

  while remaining:
    v = min(remaining, key=cost)
    nb = adj.pop(v)
    for a in nb:
      adj[a].discard(v)
      adj[a].update(w for w in nb if w != a)
    remaining.discard(v)
    order.append(v)
  return tuple(order)


def _simulate(scopes: list, order: tuple, query: tuple, cards: tuple) -> tuple:
  """(entries, variables) of the largest table VE builds with this order."""
  size = lambda s: math.prod(cards[u] for u in s)
  tables = [tuple(s) for s in scopes]
  best = max(((size(s), s) for s in tables), default=(1, ()))
  for x in order:
    inv = [s for s in tables if x in s]
    tables = [s for s in tables if x not in s]
    union = tuple(sorted(set().union(*inv)))
    best = max(best, (size(union), union))
    tables.append(tuple(u for u in union if u != x))
  best = max(best, (size(query), tuple(query)))
  return int(best[0]), tuple(best[1])


def _fmt_bytes(n: float) -> str:
  for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
    if n < 1024 or unit == "PiB":
      return f"{n:.3g} {unit}"
    n /= 1024.0
  return f"{n} B"


def _fmt_entries(n: int) -> str:
  return f"{n:,}" if n < 1e12 else f"{n:.3g}"


# --------------------------------------------------------------------------------------
# Execution (traced; pure functions of the log CPTs and the evidence values).

def _align(table, scope: tuple, target: tuple, cards: tuple):
  """table over `scope` -> broadcastable over `target` (axes reordered, size-1 axes added)."""
  if not scope:
    return jnp.reshape(table, (1,) * len(target))
  perm = sorted(range(len(scope)), key=lambda i: target.index(scope[i]))
  t = jnp.transpose(table, perm) if perm != list(range(len(scope))) else table
  return t.reshape(tuple(cards[u] if u in scope else 1 for u in target))


def _slice_evidence(table, scope: tuple, evpos: dict, values, cards: tuple):
  """Instantiates the evidence axes of one factor with a single gather."""
  e_axes = [i for i, u in enumerate(scope) if u in evpos]
  if not e_axes:
    return table, scope
  rest = [i for i in range(len(scope)) if i not in e_axes]
  t = jnp.transpose(table, e_axes + rest) if e_axes + rest != list(range(len(scope))) else table
  e_cards = [cards[scope[i]] for i in e_axes]
  t = t.reshape((math.prod(e_cards),) + tuple(cards[scope[i]] for i in rest))
  flat = jnp.zeros((), jnp.int32)
  for i, c in zip(e_axes, e_cards, strict=True):
    flat = flat * c + values[evpos[scope[i]]]
  return t[flat], tuple(scope[i] for i in rest)


def _logsumexp(x, axis: int):
  """logsumexp whose gradient is 0, not NaN, where every term is -inf (P = 0 entries).

  CPTs with structural zeros (deterministic nodes) give all -inf slices; the
  plain gradient there is exp(-inf - -inf) = NaN, which would poison the
  expected counts and marginals of every other entry.
  """
  m = jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  s = jnp.sum(jnp.exp(x - m), axis=axis)
  ok = s > 0
  return jnp.where(ok, jnp.log(jnp.where(ok, s, 1.0)) + jnp.squeeze(m, axis), -jnp.inf)


def _log_joint_one(plan: Plan, log_cpts: Sequence, values):
  """log P(query, e) for one evidence set: values i32[|E|] -> f[*query cards]."""
  g = plan.graph
  cards = g.cards
  evpos = {u: i for i, u in enumerate(plan.evidence)}
  factors = [_slice_evidence(log_cpts[v], g.scope(v), evpos, values, cards)
             for v in plan.factors]
  for x in plan.order:
    inv = [f for f in factors if x in f[1]]
    factors = [f for f in factors if x not in f[1]]
    union = tuple(sorted(set().union(*(s for _, s in inv))))
    total = functools.reduce(jnp.add, [_align(t, s, union, cards) for t, s in inv])
    total = jnp.broadcast_to(total, tuple(cards[u] for u in union))
    factors.append((_logsumexp(total, union.index(x)),
                    tuple(u for u in union if u != x)))
  q = plan.query
  shape = tuple(cards[u] for u in q)
  if not factors:
    return jnp.zeros(shape, log_cpts[0].dtype)
  total = functools.reduce(jnp.add, [_align(t, s, q, cards) for t, s in factors])
  return jnp.broadcast_to(total, shape)


def _batched(fn, chunk: int):
  """vmap over the leading axis of the evidence values, in chunks of `chunk` (0 = all)."""
  def run(values):
    if chunk and values.shape[0] > chunk:
      return jax.lax.map(fn, values, batch_size=chunk)
    return jax.vmap(fn)(values)
  return run


def log_joint(plan: Plan, log_cpts: Sequence, values, chunk: int = 0):
  """log P(query = q, e) per evidence set.

  Args:
    plan: from `make_plan`.
    log_cpts: one log CPT per variable, f[*parent cards, card].
    values: i32[B, |evidence|] evidence state indices, columns in `plan.evidence` order.
    chunk: evaluate `chunk` evidence sets at a time (0 = all at once).

  Returns:
    f[B, *query cards] (nats); for plan.joint=False, up to a constant per row.
  """
  values = jnp.asarray(values, jnp.int32)
  values = values[None] if values.ndim == 1 else values
  if values.shape[1] != len(plan.evidence):
    raise errors.ConfigError(f"{plan.describe()} takes {len(plan.evidence)} evidence values per "
                             f"set (got an array of shape {values.shape})")
  return _batched(lambda v: _log_joint_one(plan, log_cpts, v), chunk)(values)


def posterior(plan: Plan, log_cpts: Sequence, values, chunk: int = 0):
  """P(query | e) per evidence set: (probs f[B, *query cards], log_z f[B]).

  `log_z` is log P(e) when plan.joint (else log of the relevant part of it);
  -inf marks impossible evidence, whose probs are NaN.
  """
  lj = log_joint(plan, log_cpts, values, chunk)
  flat = lj.reshape(lj.shape[0], -1)
  log_z = jax.nn.logsumexp(flat, axis=-1)
  probs = jnp.exp(flat - log_z[:, None]).reshape(lj.shape)
  return probs, log_z


def log_evidence(plan: Plan, log_cpts: Sequence, values, chunk: int = 0):
  """log P(e) per evidence set, f[B] (nats); needs a plan with query ()."""
  if plan.query:
    raise errors.ConfigError(f"log_evidence needs a plan with no query variables (got "
                             f"{plan.describe()})")
  return log_joint(plan, log_cpts, values, chunk)


def expected_counts(plan: Plan, log_cpts: Sequence, values, weights, chunk: int = 0):
  """Weighted log-likelihood and expected family counts, by one backward pass of VE.

  Args:
    plan: make_plan(graph, (), observed, prune=False): every CPD in the product.
    log_cpts: normalized log CPTs.
    values: i32[B, |observed|] observed states; weights: f[B] (0 = padding).

  Returns:
    (sum_i w_i log P(e_i), counts) with counts[v]: f[*parent cards, card] =
    sum_i w_i P(X_v = x, pa_v = u | e_i), the E-step statistics of every CPD.
  """
  if plan.query or not plan.joint or len(plan.factors) != plan.graph.num_variables:
    raise errors.ConfigError("expected_counts needs make_plan(graph, (), observed, prune=False)")

  def total(tables):
    lp = log_evidence(plan, tables, values, chunk)
    return jnp.sum(jnp.where(weights > 0, weights * lp, 0.0))
  return jax.value_and_grad(total)(list(log_cpts))


def marginals(plan: Plan, log_cpts: Sequence, values, chunk: int = 0):
  """P(X_v | e) of EVERY variable per evidence set, from one forward and backward pass.

  The gradient of log P(e) w.r.t. log CPT v is the family posterior
  P(x_v, pa_v | e); summing out the parents gives the marginal. One program
  answers all V single-marginal queries (evidence variables come out one-hot).

  Args:
    plan: make_plan(graph, (), evidence, prune=False).
    log_cpts: normalized log CPTs; values: i32[B, |evidence|].

  Returns:
    (log_z f[B] = log P(e), [f[B, card_v] per variable]); impossible evidence
    gives log_z = -inf and NaN marginals.
  """
  if plan.query or len(plan.factors) != plan.graph.num_variables:
    raise errors.ConfigError("marginals needs make_plan(graph, (), evidence, prune=False)")
  values = jnp.asarray(values, jnp.int32)
  values = values[None] if values.ndim == 1 else values

  def one(v):
    log_z, grads = jax.value_and_grad(lambda t: _log_joint_one(plan, t, v))(list(log_cpts))
    return log_z, [jnp.sum(gr, axis=tuple(range(gr.ndim - 1))) for gr in grads]
  return _batched(one, chunk)(values)


# --------------------------------------------------------------------------------------
# Host-level queries by name.

@functools.lru_cache(maxsize=256)
def _jitted_posterior(plan: Plan, chunk: int):
  return jax.jit(lambda cpts, values: posterior(plan, cpts, values, chunk))


def evidence_values(graph: Graph, evidence) -> tuple:
  """(evidence variable ids, i32[B, |E|]) from {name: state} or a list of such dicts
  (all with the same variables), states as names or indices."""
  rows = [evidence] if isinstance(evidence, dict) else list(evidence)
  if not rows:
    return (), np.zeros((0, 0), np.int32)
  names = tuple(rows[0])
  ids = _resolve(graph, names)
  out = np.zeros((len(rows), len(ids)), np.int32)
  for i, row in enumerate(rows):
    if set(row) != set(names):
      raise errors.ConfigError(f"evidence set {i} observes {sorted(row)}, not {sorted(names)}: "
                               f"a batch of queries shares its evidence variables")
    for j, (n, v) in enumerate(zip(names, ids, strict=True)):
      out[i, j] = graph.state_index(v, row[n])
  return ids, out


def check_possible(plan: Plan, log_z, values) -> None:
  """Raises one line naming the first evidence set of probability 0."""
  bad = np.flatnonzero(~np.isfinite(np.asarray(log_z)) | np.isnan(np.asarray(log_z)))
  if bad.size:
    i = int(bad[0])
    g = plan.graph
    ev = ", ".join(f"{g.names[v]}={g.states[v][int(values[i, j])]}"
                   for j, v in enumerate(plan.evidence))
    raise errors.DataError(
        f"impossible evidence: P({ev}) = 0 under the network (evidence set {i} of "
        f"{len(values)}{f', {bad.size} impossible' if bad.size > 1 else ''}); "
        f"{plan.describe()} is undefined")


def query(graph: Graph, log_cpts: Sequence, variables, evidence=None, order="min_fill",
          max_bytes: int = DEFAULT_MAX_BYTES, chunk: int = 0) -> np.ndarray:
  """Posterior P(variables | evidence) on the host, by name.

  Args:
    graph, log_cpts: the network.
    variables: a name or a tuple of names (the joint over them).
    evidence: None, {name: state} or a list of such dicts (a batch, one
      jitted call).
    order, max_bytes, chunk: see `make_plan` / `log_joint`.

  Returns:
    f64[*cards] for one evidence set, f64[B, *cards] for a list.

  Raises:
    ConfigError for unknown variables or states or a query over the memory
    limit; DataError for evidence of probability 0.
  """
  ids, values = evidence_values(graph, evidence or {})
  values = values if values.size or ids else np.zeros((1, 0), np.int32)
  itemsize = np.dtype(jnp.asarray(log_cpts[0]).dtype).itemsize
  plan = make_plan(graph, variables, ids, order, max_bytes=max_bytes,
                   batch=chunk or len(values), itemsize=itemsize)
  probs, log_z = _jitted_posterior(plan, chunk)([jnp.asarray(t) for t in log_cpts],
                                                jnp.asarray(values))
  check_possible(plan, log_z, values)
  probs = np.asarray(probs, np.float64)
  return probs if isinstance(evidence, (list, tuple)) else probs[0]
