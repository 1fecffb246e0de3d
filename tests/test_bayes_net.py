"""Discrete Bayesian networks: BIF parsing, exact VE, sampling, EM and SGD of bayes_net."""
import itertools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from gen_jax import errors
from gen_jax.data import bif, bn_data
from gen_jax.data import spec as spec_lib
from gen_jax.inference import bn_sampling
from gen_jax.inference import variable_elimination as ve
from gen_jax.models import bayes_net

pytestmark = pytest.mark.usefixtures("cheap_compiles")

ASIA = bif.find("asia")


def random_network(seed: int, parents: tuple, cards: tuple, alpha: float = 1.0) -> bif.Network:
  """A network with Dirichlet(alpha) CPT rows (positive almost surely)."""
  rng = np.random.default_rng(seed)
  names = tuple(f"v{i}" for i in range(len(cards)))
  states = tuple(tuple(f"s{j}" for j in range(c)) for c in cards)
  cpts = tuple(rng.dirichlet(np.full(cards[v], alpha), size=tuple(cards[u] for u in pa))
               for v, pa in enumerate(parents))
  return bif.Network("random", names, states, tuple(parents), cpts)


SMALL = random_network(0, ((), (0,), (0,), (1, 2), (3,), (1, 4)), (2, 3, 2, 3, 2, 2))


def brute_joint(net: bif.Network) -> np.ndarray:
  """The full joint table f64[*cards] by enumeration."""
  joint = np.ones(net.cards)
  for idx in itertools.product(*[range(c) for c in net.cards]):
    joint[idx] = np.prod([net.cpts[v][tuple(idx[u] for u in net.parents[v]) + (idx[v],)]
                          for v in range(len(net.cards))])
  return joint


def brute_posterior(net, joint, query: tuple, evidence: dict) -> np.ndarray:
  g = net.graph
  sl = [slice(None)] * len(net.cards)
  for name, state in evidence.items():
    v = g.index(name)
    sl[v] = slice(g.state_index(v, state), g.state_index(v, state) + 1)
  sub = joint[tuple(sl)]
  q = [g.index(n) for n in query]
  table = sub.sum(axis=tuple(a for a in range(len(net.cards)) if a not in q))
  table = np.transpose(table, np.argsort(np.argsort(q)))  # axes in query order
  return table / table.sum()


def config_for(network: str, **model) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      family="bayes_net", model=dict(network=network, **model), data=dict(path="")))


def table_spec(net: bif.Network) -> dict:
  return {"x": spec_lib.Field((len(net.cards),), "int32", "table", net.cards)}


def write(tmp_path, net: bif.Network) -> str:
  path = os.path.join(tmp_path, f"{net.name}.bif")
  with open(path, "w") as f:
    f.write(bif.to_bif(net))
  return path


# ----------------------------------------------------------------------------- BIF


def test_bif_round_trip_of_embedded_asia_and_gz(tmp_path):
  assert ASIA.variables == ("asia", "tub", "smoke", "lung", "bronc", "either", "xray", "dysp")
  assert ASIA.num_parameters() == 18
  # Rows are labelled by parent states, in the block's parent order.
  either = ASIA.variables.index("either")
  assert ASIA.parents[either] == (3, 1)
  np.testing.assert_array_equal(ASIA.cpts[either][..., 0], [[1, 1], [1, 0]])
  back = bif.parse(bif.to_bif(ASIA))
  assert (back.variables, back.states, back.parents) == (ASIA.variables, ASIA.states,
                                                         ASIA.parents)
  for a, b in zip(ASIA.cpts, back.cpts, strict=True):
    np.testing.assert_array_equal(a, b)
  import gzip  # pylint: disable=g-import-not-at-top
  path = os.path.join(tmp_path, "asia2.bif.gz")
  with gzip.open(path, "wt") as f:
    f.write("// a comment\n/* block\ncomment */\n" + bif.to_bif(ASIA))
  assert bif.read(path).name == "asia2"
  assert bif.find("ignored", path=path).graph == ASIA.graph


@pytest.mark.parametrize("text,where,what", [
    ("variable a { type discrete [ 2 ] { x, y }; }\nprobability ( a ) { table 0.5 0.5; }",
     ":2:", "expected ';'"),
    ("variable a { type discrete [ 3 ] { x, y }; }", ":1:", "declares 3 states"),
    ("variable a { type discrete [ 2 ] { x, y }; }\nprobability ( b ) { table 0.5, 0.5; }",
     ":2:", "unknown variable 'b'"),
    ("variable a { type discrete [ 2 ] { x, y }; }\n\nprobability ( a ) { table 0.5, 0.6; }",
     ":3:", "sums to 1.1"),
    ("variable a { type discrete [ 2 ] { x, y }; }\nvariable b { type discrete [ 2 ] { x, y }; }"
     "\nprobability ( a ) { table 0.5, 0.5; }\nprobability ( b | a ) {\n (x) 0.5, 0.5;\n (z) 1, 0;"
     "\n}", ":6:", "unknown state of 'a' 'z'"),
    ("variable a { type discrete [ 2 ] { x, y }; }\nvariable b { type discrete [ 2 ] { x, y }; }"
     "\nprobability ( a ) { table 0.5, 0.5; }\nprobability ( b | a ) { (x) 0.5, 0.5; }",
     ":4:", "no row for (y)"),
    ("variable a { type discrete [ 2 ] { x, y }; }", ":1:", "no probability block"),
    ("variable a { type discrete [ 2 ] { x, y }; }\nprobability ( a ) { table 0.5, 0.5;",
     ":2:", "got the end of the file"),
])
def test_a_broken_bif_is_one_line_naming_file_and_line(tmp_path, text, where, what):
  path = os.path.join(tmp_path, "broken.bif")
  with open(path, "w") as f:
    f.write(text)
  with pytest.raises(errors.DataError) as e:
    bif.read(path)
  msg = str(e.value)
  assert "\n" not in msg and f"broken.bif{where}" in msg and what in msg, msg


def test_a_missing_network_says_how_to_provide_it(monkeypatch):
  monkeypatch.setenv(bif.ENV_DIR, "/nonexistent")
  with pytest.raises(errors.DataError, match="BNLEARN_DIR.*data.path.*pgmpy") as e:
    bif.find("no_such_network")
  assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- VE


@pytest.mark.parametrize("net,query,evidence", [
    (ASIA, ("lung",), {"xray": "yes", "dysp": "yes"}),
    (ASIA, ("tub", "either"), {"asia": "yes", "dysp": "no"}),
    (ASIA, ("bronc",), {}),
    (ASIA, ("smoke",), {"either": "no"}),
    (SMALL, ("v0",), {"v4": "s1", "v5": "s0"}),
    (SMALL, ("v3", "v1"), {"v5": "s1"}),
    (SMALL, ("v2",), {"v0": "s1", "v3": "s2"}),
])
def test_ve_equals_brute_force_enumeration(net, query, evidence):
  expected = brute_posterior(net, brute_joint(net), query, evidence)
  got = ve.query(net.graph, net.log_cpts(), query, evidence)
  np.testing.assert_allclose(got, expected, atol=2e-6)


def test_log_evidence_equals_brute_force_and_pruning_is_exact():
  joint = brute_joint(SMALL)
  g = SMALL.graph
  plan = ve.make_plan(g, (), ("v1", "v2"))
  assert plan.factors == (0, 1, 2)          # barren descendants pruned
  values = np.array([[a, b] for a in range(3) for b in range(2)], np.int32)
  got = jax.jit(lambda t, v: ve.log_evidence(plan, t, v))(SMALL.log_cpts(), values)
  expected = np.log([joint[:, a, b].sum() for a, b in values])
  np.testing.assert_allclose(got, expected, atol=2e-6)


def test_answer_is_independent_of_elimination_order():
  g, lc = SMALL.graph, SMALL.log_cpts()
  ev = {"v5": "s1"}
  ref = ve.query(g, lc, "v0", ev, order="min_fill")
  orders = list(ve.HEURISTICS) + [tuple(reversed(g.names)), ("v3", "v4", "v1", "v2")]
  plans = set()
  for order in orders:
    np.testing.assert_allclose(ve.query(g, lc, "v0", ev, order=order), ref, atol=2e-6)
    plans.add(ve.make_plan(g, "v0", ("v5",), order=order).order)
  assert len(plans) > 1


def test_batched_queries_equal_one_by_one():
  g, lc = ASIA.graph, ASIA.log_cpts()
  cases = [{"xray": x, "dysp": d, "asia": a} for x in ("yes", "no") for d in ("yes", "no")
           for a in ("yes", "no")]
  batched = ve.query(g, lc, "lung", cases)
  assert batched.shape == (8, 2)
  for row, case in zip(batched, cases, strict=True):
    np.testing.assert_allclose(row, ve.query(g, lc, "lung", case), atol=1e-6)
  chunked = ve.query(g, lc, "lung", cases, chunk=3)
  np.testing.assert_allclose(chunked, batched, atol=1e-6)


def test_all_marginals_from_the_gradient_of_log_evidence_equal_single_queries():
  g, lc = SMALL.graph, SMALL.log_cpts()
  cases = [{"v4": a, "v5": b} for a in ("s0", "s1") for b in ("s0", "s1")]
  ids, values = ve.evidence_values(g, cases)
  plan = ve.make_plan(g, (), ids, prune=False)
  log_z, margs = jax.jit(lambda t, v: ve.marginals(plan, t, v))(lc, values)
  joint = brute_joint(SMALL)
  np.testing.assert_allclose(np.exp(log_z), [joint[..., int(a), int(b)].sum() for a, b in values],
                             rtol=1e-5)
  for v in range(g.num_variables):
    if v in ids:
      np.testing.assert_allclose(margs[v], np.eye(2)[values[:, ids.index(v)]], atol=1e-6)
    else:
      expected = [brute_posterior(SMALL, joint, (g.names[v],), c) for c in cases]
      np.testing.assert_allclose(margs[v], expected, atol=2e-6)
  # Structural zeros (ASIA's deterministic 'either') leave the gradient finite.
  g, lc = ASIA.graph, ASIA.log_cpts()
  cases = [{"xray": a, "dysp": b} for a in ("yes", "no") for b in ("yes", "no")]
  ids, values = ve.evidence_values(g, cases)
  plan = ve.make_plan(g, (), ids, prune=False)
  _, margs = jax.jit(lambda t, v: ve.marginals(plan, t, v))(lc, values)
  joint = brute_joint(ASIA)
  np.testing.assert_allclose(margs[3], [brute_posterior(ASIA, joint, ("lung",), c)
                                        for c in cases], atol=2e-6)
  assert all(np.isfinite(np.asarray(m)).all() for m in margs)


def test_impossible_evidence_raises_one_line():
  with pytest.raises(errors.DataError, match="impossible evidence: P.*either=no.*tub=yes") as e:
    ve.query(ASIA.graph, ASIA.log_cpts(), "lung", {"either": "no", "tub": "yes"})
  assert "\n" not in str(e.value)
  cases = [{"either": "yes", "tub": "yes"}, {"either": "no", "tub": "yes"}]
  with pytest.raises(errors.DataError, match="evidence set 1 of 2"):
    ve.query(ASIA.graph, ASIA.log_cpts(), "lung", cases)


@pytest.mark.parametrize("query,evidence,match", [
    ("lng", {}, "unknown variable 'lng'; valid choices: asia, bronc, dysp"),
    ("lung", {"tub": "maybe"}, "unknown state of 'tub' 'maybe'; valid choices: no, yes"),
    ("lung", {"lung": "yes"}, "both queried and observed"),
    ("lung", {"xray": 2}, "out of range"),
])
def test_unknown_variable_or_state_is_one_line_with_choices(query, evidence, match):
  with pytest.raises(errors.ConfigError, match=match) as e:
    ve.query(ASIA.graph, ASIA.log_cpts(), query, evidence)
  assert "\n" not in str(e.value)


def test_memory_estimate_refuses_a_too_large_query_before_allocating():
  # v0 -> v1..v12, 4 states each: the joint of the children needs a table over all 13.
  parents = ((),) + ((0,),) * 12
  net = random_network(1, parents, (4,) * 13)
  g = net.graph
  plan = ve.make_plan(g, "v1", ("v2",))
  assert plan.max_entries == 16 and plan.bytes(1000) == 16 * 1000 * 4
  with pytest.raises(errors.ConfigError, match=r"needs a 256 MiB table over 13 variables.*limit of "
                                               r"1 MiB") as e:
    ve.make_plan(g, tuple(g.names[1:]), (), max_bytes=2 ** 20)
  assert "\n" not in str(e.value)
  with pytest.raises(errors.ConfigError, match="1000 evidence sets"):
    ve.make_plan(g, ("v1", "v2", "v3", "v4", "v5"), (), max_bytes=2 ** 20, batch=1000)


@pytest.mark.skipif(not os.environ.get(bif.ENV_DIR), reason="needs BNLEARN_DIR")
def test_every_single_marginal_query_on_the_bnlearn_networks_is_small():
  for name in ("child", "insurance", "alarm", "hailfinder", "win95pts"):
    g = bif.find(name).graph
    leaves = g.leaves()[:2]
    worst = max(ve.make_plan(g, (v,), leaves if v not in leaves else ()).max_entries
                for v in range(g.num_variables))
    assert worst * 4 < 2 ** 20, (name, worst)


def test_parity_with_pgmpy_variable_elimination():
  pytest.importorskip("pgmpy")
  from pgmpy.inference import VariableElimination  # pylint: disable=g-import-not-at-top
  from pgmpy.readwrite import BIFReader  # pylint: disable=g-import-not-at-top
  for net in (ASIA, SMALL):
    model = BIFReader(string=bif.to_bif(net)).get_model()
    inference = VariableElimination(model)
    g = net.graph
    leaves = [g.names[v] for v in g.leaves()]
    ev = {n: g.states[g.index(n)][0] for n in leaves}
    for v in range(g.num_variables):
      q = g.names[v]
      if q in ev:
        continue
      r = inference.query([q], evidence=ev, show_progress=False)
      theirs = [r.values[r.state_names[q].index(s)] for s in g.states[v]]
      np.testing.assert_allclose(ve.query(g, net.log_cpts(), q, ev), theirs, atol=1e-5)


# ----------------------------------------------------------------------------- sampling


def test_ancestral_samples_match_the_marginals():
  x = np.asarray(bn_sampling.ancestral(ASIA.graph, ASIA.log_cpts(), jax.random.key(0), 20000))
  assert x.shape == (20000, 8) and x.dtype == np.int32
  joint = brute_joint(ASIA)
  for v in range(8):
    p = joint.sum(axis=tuple(a for a in range(8) if a != v))
    np.testing.assert_allclose(np.bincount(x[:, v], minlength=2) / len(x), p, atol=0.01)


def test_likelihood_weighting_and_gibbs_are_within_001_of_exact():
  net, evidence = SMALL, {"v4": "s1", "v5": "s0"}
  g, lc = net.graph, [jnp.asarray(t) for t in net.log_cpts()]
  joint = brute_joint(net)
  ids, values = ve.evidence_values(g, evidence)
  values = jnp.asarray(values[0])
  xs, log_w = bn_sampling.likelihood_weighting(g, lc, ids, values, jax.random.key(1), 10_000)
  lw = bn_sampling.weighted_marginals(g, xs, log_w)
  # 100 chains x 100 kept sweeps = 10^4 draws.
  gibbs, _ = bn_sampling.gibbs(g, lc, ids, values, jax.random.key(2), 100, 120, 20)
  for v in range(g.num_variables):
    name = g.names[v]
    if name in evidence:
      exact = np.eye(g.cards[v])[g.state_index(v, evidence[name])]
    else:
      exact = brute_posterior(net, joint, (name,), evidence)
    np.testing.assert_allclose(lw[v], exact, atol=0.01, err_msg=f"LW {g.names[v]}")
    np.testing.assert_allclose(gibbs[v], exact, atol=0.01, err_msg=f"Gibbs {g.names[v]}")


# ----------------------------------------------------------------------------- the family


def _fit_em(family, params, batch, iterations: int):
  """EM through family.em in one lax.scan: (params, per-iteration loglik per case)."""
  def run(params, batch):   # the data are arguments, not constants XLA would fold
    weights = jnp.ones(batch["x"].shape[:1], jnp.float32)

    def step(p, _):
      stats = family.em.e_step(p, {}, batch, weights)
      p, _ = family.em.m_step(p, {}, stats)
      return p, stats["loglik"] / stats["count"]
    return jax.lax.scan(step, params, None, length=iterations)
  return jax.jit(run)(params, batch)


def test_mle_recovers_the_cpds_from_1e5_cases():
  net = ASIA   # its rarest parent configuration (asia = yes) still has ~1,000 cases
  family = bayes_net.make(config_for("asia"), table_spec(net))
  x = bn_data.forward_sample(net, 100_000, np.random.default_rng(0))
  batch = {"x": jnp.asarray(x)}
  params, _ = jax.jit(family.init)(jax.random.key(0), batch)
  params, ll = _fit_em(family, params, batch, 2)
  for got, true in zip(bayes_net.log_tables(params), net.cpts, strict=True):
    np.testing.assert_allclose(np.exp(got), true, atol=0.02)
  assert ll[1] > ll[0]
  # EM from the MLE stays put (complete data: one iteration converges).
  again, ll2 = _fit_em(family, params, batch, 1)
  np.testing.assert_allclose(ll2[0], ll[1], rtol=1e-6)


def test_em_with_a_hidden_variable_recovers_cpds_up_to_label_swap_and_is_monotone(tmp_path):
  # A latent class model: hidden h -> four observed children (pgmpy test_EM style).
  net = random_network(3, ((), (0,), (0,), (0,), (0,)), (2, 2, 3, 2, 3), alpha=0.7)
  cpts = list(net.cpts)
  cpts[0] = np.array([0.35, 0.65])
  net = bif.Network("latent", net.variables, net.states, net.parents, tuple(cpts))
  path = write(tmp_path, net)
  family = bayes_net.make(config_for(path, hidden=("v0",), init_scale=1.0), table_spec(net))
  x = bn_data.forward_sample(net, 20_000, np.random.default_rng(1))
  x[:, 0] = bn_data.HIDDEN
  batch = {"x": jnp.asarray(x)}
  params, _ = jax.jit(family.init)(jax.random.key(4), batch)
  params, ll = _fit_em(family, params, batch, 150)
  ll = np.asarray(ll)
  assert np.all(np.diff(ll) >= -1e-5), np.diff(ll).min()
  learned = [np.exp(np.asarray(t)) for t in bayes_net.log_tables(params)]
  errs = []
  for perm in ((0, 1), (1, 0)):
    err = np.abs(learned[0][list(perm)] - net.cpts[0]).max()
    for v in range(1, 5):
      err = max(err, np.abs(learned[v][list(perm)] - net.cpts[v]).max())
    errs.append(err)
  assert min(errs) < 0.1, errs
  # Expected counts are posterior family marginals: they sum to the number of cases.
  stats = family.em.e_step(params, {}, batch, jnp.ones(len(x)))
  for c in stats["counts"]:
    np.testing.assert_allclose(float(c.sum()), len(x), rtol=1e-4)


def test_em_and_sgd_reach_the_same_log_likelihood(tmp_path):
  # Rows away from 0 and 1, so every CPT entry is seen and the MLE is interior
  # (an unseen entry's MLE is 0, which SGD only approaches).
  net = random_network(0, SMALL.parents, SMALL.cards, alpha=4.0)
  family = bayes_net.make(config_for(write(tmp_path, net)), table_spec(net))
  train = {"x": jnp.asarray(bn_data.forward_sample(net, 3000, np.random.default_rng(5)))}
  test = {"x": jnp.asarray(bn_data.forward_sample(net, 3000, np.random.default_rng(6)))}
  params, _ = jax.jit(family.init)(jax.random.key(0), train)
  em_params, _ = _fit_em(family, params, train, 1)
  tx = optax.adam(0.1)

  def fit(params, train):
    def sgd_step(carry, _):
      p, opt = carry
      (loss, _), g = jax.value_and_grad(family.loss, argnums=1, has_aux=True)(
          "model", p, {}, train, None)
      updates, opt = tx.update(g["model"], opt, p["model"])
      return ({"model": optax.apply_updates(p["model"], updates)}, opt), loss
    return jax.lax.scan(sgd_step, (params, tx.init(params["model"])), None, length=300)
  (sgd_params, _), losses = jax.jit(fit)(params, train)
  assert losses[-1] < losses[0]
  mean_ll = jax.jit(lambda p, b: family.eval_fn(p, {}, b, None)["log_px"].mean())
  for batch in (train, test):
    em_ll, sgd_ll = float(mean_ll(em_params, batch)), float(mean_ll(sgd_params, batch))
    assert abs(em_ll - sgd_ll) < 1e-3, (em_ll, sgd_ll)


def test_family_marginalizes_absent_hidden_columns_and_samples_the_data_layout(tmp_path):
  net = SMALL
  path = write(tmp_path, net)
  full = bayes_net.make(config_for(path, hidden=("v1",), init_scale=0.5), table_spec(net))
  absent_spec = {"x": spec_lib.Field((5,), "int32", "table", net.cards[:1] + net.cards[2:])}
  absent = bayes_net.make(config_for(path, hidden=("v1",), init_scale=0.5), absent_spec)
  x = bn_data.forward_sample(net, 50, np.random.default_rng(0))
  params, _ = full.init(jax.random.key(0), None)
  log_px_full = jax.jit(lambda p, x: full.eval_fn(p, {}, {"x": x}, None)["log_px"])
  lp_full = log_px_full(params, jnp.asarray(x))
  lp_abs = jax.jit(lambda p, x: absent.eval_fn(p, {}, {"x": x}, None)["log_px"])(
      params, jnp.asarray(np.delete(x, 1, axis=1)))
  np.testing.assert_allclose(lp_full, lp_abs, rtol=1e-6)
  # = brute-force marginal of the true joint under the same (here: true) CPDs.
  true_params = {"model": {"logits": [jnp.log(jnp.asarray(t, jnp.float32)) for t in net.cpts]}}
  joint = brute_joint(net)
  lp = log_px_full(true_params, jnp.asarray(x))
  expected = [np.log(joint[(r[0], slice(None)) + tuple(r[2:])].sum()) for r in x]
  np.testing.assert_allclose(lp, expected, rtol=1e-5)
  assert absent.sample(params, {}, jax.random.key(1), 7).shape == (7, 5)
  with pytest.raises(errors.ConfigError, match="init_scale > 0"):
    bayes_net.make(config_for(path, hidden=("v1",)), table_spec(net))
  with pytest.raises(errors.ConfigError, match="unknown variable 'nope'"):
    bayes_net.make(config_for(path, hidden=("nope",), init_scale=1.0), table_spec(net))


def test_bnlearn_source_is_seeded_and_marks_hidden_columns():
  split = bn_data.load("bnlearn", "train", "", dict(network="asia", num_train=300,
                                                    hidden=("lung",), seed=3))
  x = split.x
  assert x.shape == (300, 8) and x.dtype == np.int32 and split.kind == "table"
  assert split.spec["x"].cardinality == (2,) * 8
  assert np.all(x[:, 3] == -1) and x[:, [0, 1, 2, 4, 5, 6, 7]].min() >= 0
  again = bn_data.load("bnlearn", "train", "", dict(network="asia", num_train=300,
                                                    hidden=("lung",), seed=3))
  np.testing.assert_array_equal(x, again.x)
  test = bn_data.load("bnlearn", "test", "", dict(network="asia", num_test=300, seed=3))
  assert not np.array_equal(test.x[:, 0], x[:, 0]) or not np.array_equal(test.x, x)
