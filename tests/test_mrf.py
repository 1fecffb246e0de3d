"""Pairwise MRFs and the 2-D Ising model: enumeration, Gibbs kernels, loopy BP, the family.

Oracles: brute-force sums written independently of the module, exact
transition matrices on tiny state spaces, closed forms (Onsager/Yang) and, when
installed, PGMax (pip install pgmax numba; not needed by CI).
"""
import functools
import itertools
import math
import types as pytypes

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from gen_jax import errors
from gen_jax.data import ising_data
from gen_jax.data import spec as spec_lib
from gen_jax.evaluators import ising_curve
from gen_jax.inference import pairwise_mrf as pm
from gen_jax.models import mrf

pytestmark = pytest.mark.usefixtures("cheap_compiles")


def _direct_log_z(k_right, k_down, field):
  """log Z of an H x W Ising lattice by a plain double loop over sites (numpy, float64)."""
  h, w = field.shape
  logs = []
  for bits in itertools.product((-1.0, 1.0), repeat=h * w):
    s = np.asarray(bits).reshape(h, w)
    total = 0.0
    for r in range(h):
      for c in range(w):
        total += field[r, c] * s[r, c]
        total += k_right[r, c] * s[r, c] * s[r, (c + 1) % w]
        total += k_down[r, c] * s[r, c] * s[(r + 1) % h, c]
    logs.append(total)
  logs = np.asarray(logs)
  return float(np.log(np.sum(np.exp(logs - logs.max()))) + logs.max())


@functools.partial(jax.jit, static_argnums=1)
def _spin_moments(lattice, periodic):
  """Exact <s_i> f[V] and <s_a s_b> f[E] of a lattice, by enumeration (one jitted program)."""
  model = pm.lattice_mrf(lattice, periodic)
  ex = pm.exact(model)
  spin = jnp.array([-1.0, 1.0])
  first = ex.marginals @ spin
  second = jnp.einsum("eab,a,b->e", ex.pair_marginals, spin, spin)
  return model, ex, first, second


def _grid(height, width, k, field, periodic):
  lattice = pm.ising_lattice(height, width, k, field, periodic)
  return lattice, pm.lattice_mrf(lattice, periodic)


def _random_mrf(rng, num_vars, num_values, edges, scale=1.0):
  edges = np.asarray(edges, np.int32)
  return pm.PairwiseMRF(
      jnp.asarray(rng.normal(0, scale, (num_vars, num_values)), jnp.float32),
      jnp.asarray(edges),
      jnp.asarray(rng.normal(0, scale, (len(edges), num_values, num_values)), jnp.float32))


@jax.jit
def _log_potentials_and_conditionals(model):
  """Every state i32[N, V], its log-potential f[N] and conditionals logits f[N, V, S]."""
  v, s = model.unary.shape
  x = pm.states(v, s, jnp.arange(pm.num_states(model)))
  return x, pm.log_potential(model, x), jax.vmap(lambda xi: pm.conditional_logits(model, xi))(x)


# ---------------------------------------------------------------------------
# Enumeration.

@pytest.mark.parametrize("size,periodic", [(2, True), (3, False)])
def test_enumeration_log_z_matches_a_direct_sum(size, periodic):
  rng = np.random.default_rng(size)
  k = rng.normal(0.3, 0.3, (size, size)).astype(np.float32)
  h = rng.normal(0.0, 0.5, (size, size)).astype(np.float32)

  @jax.jit
  def run(k, h):
    lattice, model = _grid(size, size, k, h, periodic)
    ex = pm.exact(model, chunk=64)       # several chunks, the last one padded
    x = pm.states(size * size, 2, jnp.arange(2 ** (size * size)))
    s = 2.0 * x.reshape(-1, size, size) - 1.0
    return (lattice, model, ex, pm.log_potential(model, x),
            pm.lattice_log_potential(lattice, s.astype(jnp.float32)))
  lattice, model, ex, lp_mrf, lp_lattice = run(k, h)
  want = _direct_log_z(np.asarray(lattice.k_right, np.float64),
                       np.asarray(lattice.k_down, np.float64), h.astype(np.float64))
  np.testing.assert_allclose(float(ex.log_z), want, rtol=1e-5)
  # The lattice and its MRF form give the same log-potential for every state.
  np.testing.assert_allclose(lp_mrf, lp_lattice, atol=1e-5)
  # Marginals are distributions and the pairwise ones marginalize to them.
  m, pair = np.asarray(ex.marginals), np.asarray(ex.pair_marginals)
  np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-5)
  e = np.asarray(model.edges)
  np.testing.assert_allclose(pair.sum(2), m[e[:, 0]], atol=1e-5)
  np.testing.assert_allclose(pair.sum(1), m[e[:, 1]], atol=1e-5)


def test_enumeration_refuses_huge_models():
  big = pm.PairwiseMRF(jnp.zeros((30, 2)), jnp.zeros((0, 2), jnp.int32), jnp.zeros((0, 2, 2)))
  with pytest.raises(errors.GenJaxError, match="exceeds the limit"):
    pm.exact_log_z(big)


# ---------------------------------------------------------------------------
# Gibbs samplers.

def test_checkerboard_gibbs_matches_exact_moments_on_3x3():
  rng = np.random.default_rng(0)
  lattice, _ = _grid(3, 3, 0.4, rng.normal(0.0, 0.3, (3, 3)).astype(np.float32), False)
  model, _, first, second = _spin_moments(lattice, False)
  a, b = np.asarray(model.edges).T

  def observe(s):
    flat = s.reshape(-1)
    return jnp.concatenate([flat, flat[a] * flat[b]])
  chains, records = 1000, 100
  s0 = pm.initial_spins(jax.random.key(1), (chains, 3, 3))
  _, rec = jax.jit(lambda k, s: pm.checkerboard_chains(
      lattice, jax.random.split(k, chains), s, records, burn_in=20, observe=observe))(
          jax.random.key(0), s0)
  per_chain = np.asarray(rec, np.float64).mean(1)     # independent chains -> honest s.e.
  est, se = per_chain.mean(0), per_chain.std(0, ddof=1) / math.sqrt(chains)
  want = np.concatenate([first, second])
  assert se.max() < 0.01
  np.testing.assert_array_less(np.abs(est - want), 4.5 * se + 1e-4)


def test_random_scan_gibbs_matches_exact_marginals_on_a_loopy_graph():
  rng = np.random.default_rng(3)
  model = _random_mrf(rng, 5, 3, [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4)], scale=0.7)
  ex = pm.exact(model)
  chains, records = 400, 100

  def chain(k, x0):
    return pm.random_scan_gibbs(model, k, x0, records, thin=5,
                                observe=lambda x: jax.nn.one_hot(x, 3))[1]
  x0 = jax.random.randint(jax.random.key(2), (chains, 5), 0, 3)
  rec = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(4), chains), x0)
  per_chain = np.asarray(rec, np.float64)[:, 4:].mean(1)          # drop 20 steps of burn-in
  est, se = per_chain.mean(0), per_chain.std(0, ddof=1) / math.sqrt(chains)
  np.testing.assert_array_less(np.abs(est - np.asarray(ex.marginals)), 4.5 * se + 1e-4)


def _pi_and_conditionals(model):
  """(states i32[N, V], exact pi f64[N], p(x_i = a | x_-i) f64[N, V, S])."""
  x, lw, logits = (np.asarray(a, np.float64) for a in _log_potentials_and_conditionals(model))
  pi = np.exp(lw - lw.max())
  cond = np.exp(logits - logits.max(-1, keepdims=True))
  return x.astype(np.int32), pi / pi.sum(), cond / cond.sum(-1, keepdims=True)


def _same_outside(x, site_mask):
  """[N, N] bool: states x, y agree on every site where site_mask is 0."""
  x = np.asarray(x)
  keep = ~np.asarray(site_mask, bool)
  return np.all((x[:, None, :] == x[None, :, :]) | ~keep, axis=-1)


def _block_kernel(model, x, cond, sites):
  """Exact P[x, y] of resampling `sites` (bool[V]) jointly from their conditionals given x."""
  x = np.asarray(x)
  n, v = x.shape
  prob = np.ones((n, n))
  for i in np.nonzero(sites)[0]:
    prob = prob * cond[:, i, :][:, x[:, i]]             # p(y_i | x_-i)
  return prob * _same_outside(x, sites)


def test_synchronous_update_does_not_preserve_the_target():
  """Two strongly coupled spins: 'parallel Gibbs' spreads mass 1/2 onto anti-aligned states."""
  k = 1.5
  spin = jnp.array([-1.0, 1.0])
  model = pm.PairwiseMRF(jnp.zeros((2, 2)), jnp.array([[0, 1]], jnp.int32),
                         (k * spin[:, None] * spin[None, :])[None])
  x, pi, cond = _pi_and_conditionals(model)
  xs = np.asarray(x)
  p_sync = cond[:, 0, :][:, xs[:, 0]] * cond[:, 1, :][:, xs[:, 1]]     # all sites at once
  np.testing.assert_allclose(p_sync.sum(1), 1.0, atol=1e-6)
  assert np.abs(pi @ p_sync - pi).sum() > 0.1             # pi P != pi (by 0.16 in one step)
  vals, vecs = np.linalg.eig(p_sync.T)
  stat = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
  stat = stat / stat.sum()
  aligned = xs[:, 0] == xs[:, 1]
  np.testing.assert_allclose(stat[aligned].sum(), 0.5, atol=1e-5)   # any coupling
  np.testing.assert_allclose(pi[aligned].sum(), 1.0 / (1.0 + math.exp(-2 * k)), rtol=1e-6)
  # The module's synchronous_step samples exactly this (wrong) kernel: one step from (0, 1).
  start = 1                              # state index 1 = (x0=1, x1=0)
  draws = jax.vmap(lambda kk: pm.synchronous_step(model, kk, x[start]))(
      jax.random.split(jax.random.key(0), 20000))
  idx = np.asarray(draws[:, 0] + 2 * draws[:, 1])
  freq = np.bincount(idx, minlength=4) / len(idx)
  se = np.sqrt(p_sync[start] * (1 - p_sync[start]) / len(idx))
  np.testing.assert_array_less(np.abs(freq - p_sync[start]), 4.5 * se + 1e-3)


def test_checkerboard_kernel_preserves_the_target_and_the_sampler_follows_it():
  """2x2 periodic lattice, per-bond couplings and fields: exact P = P_colour0 P_colour1."""
  rng = np.random.default_rng(5)
  lattice, model = _grid(2, 2, rng.normal(0.5, 0.3, (2, 2)).astype(np.float32),
                         rng.normal(0, 0.5, (2, 2)).astype(np.float32), True)
  x, pi, cond = _pi_and_conditionals(model)
  masks = pm.colour_masks(2, 2).reshape(2, -1) > 0
  p = _block_kernel(model, x, cond, masks[0]) @ _block_kernel(model, x, cond, masks[1])
  np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
  np.testing.assert_allclose(pi @ p, pi, atol=1e-6)                  # stationary: pi P = pi
  # The lattice's local fields are the MRF's conditionals (the sampler's update rule).
  s = 2.0 * jnp.asarray(x, jnp.float32).reshape(-1, 2, 2) - 1.0
  p_up = jax.nn.sigmoid(2.0 * pm.neighbour_sum(lattice, s)).reshape(-1, 4)
  np.testing.assert_allclose(p_up, cond[:, :, 1], atol=1e-6)
  # One sweep of the actual sampler from state 6 follows row 6 of P.
  start, n = 6, 20000
  s0 = jnp.broadcast_to(s[start], (n, 2, 2))
  out = jax.jit(jax.vmap(lambda sp, kk: pm.checkerboard_sweep(lattice, sp, kk)))(
      s0, jax.random.split(jax.random.key(1), n))
  idx = np.asarray(((out.reshape(n, 4) + 1) / 2).astype(np.int32) @ (2 ** np.arange(4)))
  freq = np.bincount(idx, minlength=16) / n
  se = np.sqrt(p[start] * (1 - p[start]) / n)
  np.testing.assert_array_less(np.abs(freq - p[start]), 4.5 * se + 1e-3)


def test_single_site_gibbs_is_in_detailed_balance():
  rng = np.random.default_rng(7)
  model = _random_mrf(rng, 3, 3, [(0, 1), (1, 2), (0, 2)])
  x, pi, cond = _pi_and_conditionals(model)
  v = 3
  p = sum(_block_kernel(model, x, cond, np.arange(v) == i) for i in range(v)) / v
  np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
  flow = pi[:, None] * p
  np.testing.assert_allclose(flow, flow.T, atol=1e-7)                # pi_x P_xy = pi_y P_yx
  np.testing.assert_allclose(pi @ p, pi, atol=1e-6)


# ---------------------------------------------------------------------------
# Loopy belief propagation.

TREE = [(0, 1), (0, 2), (1, 3), (1, 4), (2, 5), (5, 6)]         # 7 nodes, diameter 5
CHAIN = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


@pytest.mark.parametrize("edges,num_values", [(TREE, 3), (CHAIN, 2)], ids=["tree", "chain"])
def test_sum_product_is_exact_on_trees_and_chains(edges, num_values):
  rng = np.random.default_rng(len(edges))
  model = _random_mrf(rng, len(edges) + 1, num_values, edges)
  ex = pm.exact(model)
  bp = pm.belief_propagation(model, "sum", 0.0, 1e-6, 50)
  assert bool(bp.converged) and int(bp.iterations) <= len(edges) + 2
  np.testing.assert_allclose(np.exp(bp.log_beliefs), ex.marginals, atol=1e-5)
  np.testing.assert_allclose(np.exp(bp.log_pair_beliefs), ex.pair_marginals, atol=1e-5)
  np.testing.assert_allclose(pm.bethe_log_z(model, bp), ex.log_z, atol=1e-4)


def test_max_product_gives_the_map_and_max_marginals_on_a_tree():
  rng = np.random.default_rng(11)
  model = _random_mrf(rng, 7, 3, TREE)
  x, lw, _ = (np.asarray(a) for a in _log_potentials_and_conditionals(model))
  bp = pm.belief_propagation(model, "max", 0.3, 1e-6, 100)
  assert bool(bp.converged)
  np.testing.assert_array_equal(bp.map_state(), x[np.argmax(lw)])
  # log max-marginal of x_i = a: max over states with x_i = a, relative to the global max.
  want = np.stack([[lw[x[:, i] == a].max() for a in range(3)] for i in range(7)]) - lw.max()
  np.testing.assert_allclose(bp.log_beliefs, want, atol=1e-4)


def test_loopy_bp_on_a_weakly_coupled_grid_is_close_and_locally_consistent():
  rng = np.random.default_rng(0)
  _, model = _grid(3, 3, 0.2, rng.normal(0, 0.5, (3, 3)).astype(np.float32), False)
  ex = pm.exact(model)
  bp = pm.belief_propagation(model, "sum", 0.5, 1e-7, 200)
  assert bool(bp.converged)
  assert np.abs(np.exp(bp.log_beliefs) - ex.marginals).max() < 5e-3
  assert abs(float(pm.bethe_log_z(model, bp) - ex.log_z)) < 1e-2
  # At a fixed point the edge beliefs marginalize to the node beliefs.
  e = np.asarray(model.edges)
  pair, node = np.exp(bp.log_pair_beliefs), np.exp(bp.log_beliefs)
  np.testing.assert_allclose(pair.sum(2), node[e[:, 0]], atol=1e-5)
  np.testing.assert_allclose(pair.sum(1), node[e[:, 1]], atol=1e-5)


def test_bp_reports_non_convergence():
  _, model = _grid(3, 3, 0.3, 0.1, False)
  bp = pm.belief_propagation(model, "sum", 0.0, 1e-9, 3)
  assert not bool(bp.converged) and int(bp.iterations) == 3 and float(bp.max_delta) > 1e-9
  with pytest.raises(errors.ConfigError):
    pm.belief_propagation(model, damping=1.0)


def test_bp_matches_pgmax():
  pytest.importorskip("numba")
  if not hasattr(jax.lib, "xla_bridge"):      # PGMax 0.6.1 predates jax.lib.xla_bridge removal
    jax.lib.xla_bridge = pytypes.SimpleNamespace(get_backend=jax.extend.backend.get_backend)
  pgmax = pytest.importorskip("pgmax")
  from pgmax import fgraph, fgroup, infer, vgroup  # pylint: disable=g-import-not-at-top
  del pgmax
  rng = np.random.default_rng(0)
  k, fields = 0.3, rng.normal(0, 0.5, (3, 3)).astype(np.float32)
  _, model = _grid(3, 3, k, fields, False)
  mine = pm.belief_propagation(model, "sum", 0.5, 1e-7, 200)
  variables = vgroup.NDVarArray(num_states=2, shape=(3, 3))
  fg = fgraph.FactorGraph(variable_groups=variables)
  fg.add_factors(fgroup.PairwiseFactorGroup(
      variables_for_factors=[[variables[a // 3, a % 3], variables[b // 3, b % 3]]
                             for a, b in np.asarray(model.edges)],
      log_potential_matrix=np.array([[k, -k], [-k, k]], np.float32)))
  bp = infer.build_inferer(fg.bp_state, backend="bp")
  arrays = bp.init(evidence_updates={variables: np.stack([-fields, fields], -1)})
  arrays = bp.run(arrays, num_iters=200, damping=0.5, temperature=1.0)
  theirs = np.asarray(infer.get_marginals(bp.get_beliefs(arrays))[variables]).reshape(9, 2)
  np.testing.assert_allclose(np.exp(mine.log_beliefs), theirs, atol=1e-5)


# ---------------------------------------------------------------------------
# The family, the data and the evaluator.

def _config(**model):
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict(
      {**dict(coupling="shared", field="shared", periodic=True), **model})
  c.sample = ml_collections.ConfigDict(dict(sweeps=20))
  return c


def _spec(size):
  return {"x": spec_lib.Field((size, size, 1), "float32", "image")}


def test_pseudo_likelihood_fit_recovers_the_coupling():
  temperature = 2.5
  o = ising_data.options_of(dict(size=8, temperature=temperature, num_train=500, num_test=1,
                                 chains=501, burn_in=100, thin=1))
  x = (ising_data.generate(o, "train") + 1) // 2
  batch = {"x": jnp.asarray(x[..., None], jnp.float32)}
  family = mrf.make(_config(), _spec(8))
  assert family.em is None
  params, state = jax.jit(family.init)(jax.random.key(0), batch)
  tx = optax.adam(optax.cosine_decay_schedule(0.05, 200, alpha=0.01))

  def step(carry, _):
    p, opt = carry
    grads = jax.grad(lambda q: family.loss("model", q, state, batch, None)[0])(p)
    updates, opt = tx.update(grads, opt, p)
    return (optax.apply_updates(p, updates), opt), None
  (params, _), _ = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=200))(
      params)
  learned = mrf.learned_couplings(params)
  assert abs(float(learned["beta_j"]) - 1.0 / temperature) < 0.02
  assert abs(float(learned["beta_h"])) < 0.02


def test_family_exact_log_px_is_normalized_and_pseudo_likelihood_is_labelled():
  family = mrf.make(_config(periodic=False, exact_max_sites=9), _spec(3))
  params = {"model": {"coupling": jnp.float32(0.6), "field": jnp.float32(-0.2)}}
  x = np.asarray((np.arange(512)[:, None] >> np.arange(9)) & 1)      # every 3x3 configuration
  batch = {"x": jnp.asarray(x.reshape(-1, 3, 3, 1), jnp.float32)}
  out = jax.jit(lambda p, b: family.eval_fn(p, {}, b, None))(params, batch)
  np.testing.assert_allclose(jax.nn.logsumexp(out["log_px"]), 0.0, atol=1e-5)
  assert out["pseudo_log_px"].shape == (512,)
  assert "PSEUDO" in family.eval_units["pseudo_log_px"]
  assert "exact" in family.eval_units["log_px"]
  samples = jax.jit(family.sample, static_argnums=3)(params, {}, jax.random.key(0), 5)
  assert samples.shape == (5, 3, 3, 1) and samples.dtype == jnp.float32
  assert set(np.unique(np.asarray(samples))) <= {0.0, 1.0}
  # Bigger than exact_max_sites: no exact log-likelihood is claimed.
  assert "log_px" not in mrf.make(_config(exact_max_sites=9), _spec(4)).eval_units


def test_per_edge_couplings_leave_absent_bonds_untouched():
  family = mrf.make(_config(coupling="per_edge", field="per_site", periodic=False), _spec(4))
  x = jax.random.bernoulli(jax.random.key(0), 0.5, (16, 4, 4, 1)).astype(jnp.float32)
  params, state = jax.jit(family.init)(jax.random.key(1), {"x": x})

  @jax.jit
  def grads_and_summary(p):
    g = jax.grad(lambda q: family.loss("model", q, state, {"x": x}, None)[0])(p)
    return g, mrf.learned_couplings(p, periodic=False)
  g, summary = grads_and_summary(params)
  k = g["model"]["coupling"]
  assert k["right"].shape == (4, 4) and g["model"]["field"].shape == (4, 4)
  np.testing.assert_array_equal(k["right"][:, -1], 0.0)     # no bond past the last column
  np.testing.assert_array_equal(k["down"][-1, :], 0.0)
  assert np.abs(k["right"][:, :-1]).max() > 0 and float(summary["beta_j"]) == 0.0


def test_family_rejects_bad_configs():
  with pytest.raises(errors.ConfigError, match="even"):
    mrf.make(_config(), _spec(3))                           # odd periodic lattice
  with pytest.raises(errors.ConfigError, match="unknown model key"):
    mrf.make(_config(couplings="shared"), _spec(4))
  with pytest.raises(errors.ConfigError, match="coupling"):
    mrf.make(_config(coupling="dense"), _spec(4))


def test_ising_data_is_deterministic_binary_lattices():
  options = dict(size=4, temperature=3.0, num_train=30, num_test=10, chains=10, burn_in=5, thin=1)
  train = ising_data.load("ising", "train", "", options)
  assert train.kind == "lattice" and train.x.shape == (30, 4, 4, 1) and train.x.dtype == np.uint8
  assert train.spec["x"].modality == "image" and set(np.unique(train.x)) <= {0, 1}
  np.testing.assert_array_equal(train.x, ising_data.load("ising", "train", "", options).x)
  test = ising_data.load("ising", "test", "", options)
  assert test.x.shape == (10, 4, 4, 1) and not np.array_equal(test.x, train.x[:10])
  with pytest.raises(errors.ConfigError, match="unknown data option"):
    ising_data.load("ising", "train", "", dict(temp=2.0))
  with pytest.raises(errors.ConfigError, match="even"):
    ising_data.load("ising", "train", "", dict(size=5))


def test_onsager_and_yang_closed_forms():
  tc = ising_curve.T_C
  assert abs(tc - 2.269185314) < 1e-8
  np.testing.assert_allclose(ising_curve.yang_magnetization([1e-3, 0.3, 0.5]), 1.0, atol=1e-6)
  assert ising_curve.yang_magnetization([tc, 2.5, 10.0]).max() == 0.0
  assert 0.0 < ising_curve.yang_magnetization(tc - 1e-3) < 0.5      # continuous at T_c
  np.testing.assert_allclose(ising_curve.onsager_energy(tc), -math.sqrt(2.0), atol=1e-12)
  np.testing.assert_allclose(ising_curve.onsager_energy([tc - 1e-7, tc + 1e-7]),
                             -math.sqrt(2.0), atol=1e-5)
  np.testing.assert_allclose(ising_curve.onsager_energy(0.2), -2.0, atol=1e-8)
  t = math.tanh(1 / 50.0)     # high-temperature series of ln Z/N: ln 2 + 2 ln cosh b + t^4 + ...
  np.testing.assert_allclose(ising_curve.onsager_energy(50.0), -2 * t - 4 * t ** 3 * (1 - t * t),
                             atol=1e-7)
  # e(T) = d(-beta f)/d(-beta) from Onsager's free energy, by a midpoint rule on the torus.
  n = 400
  th = (np.arange(n) + 0.5) * 2 * np.pi / n
  c1, c2 = np.cos(th)[:, None], np.cos(th)[None, :]

  def minus_beta_f(b):
    return math.log(2.0) + 0.5 * np.mean(np.log(np.cosh(2 * b) ** 2 - np.sinh(2 * b) * (c1 + c2)))
  for t in (1.6, 3.0):
    b, db = 1.0 / t, 1e-5
    e = -(minus_beta_f(b + db) - minus_beta_f(b - db)) / (2 * db)
    np.testing.assert_allclose(ising_curve.onsager_energy(t), e, atol=1e-6)


def test_kaufman_finite_torus_matches_enumeration():
  ks = (0.2, 0.4, 1.0 / ising_curve.T_C, 0.5, 0.8)       # both phases and K_c itself

  @jax.jit
  def log_z_and_energy():
    x = pm.states(16, 2, jnp.arange(2 ** 16))
    s = (2.0 * x - 1.0).reshape(-1, 4, 4)
    bonds = pm.bond_sum(s)
    log_z = jnp.stack([jax.nn.logsumexp(k * bonds) for k in ks])
    energy = jnp.stack([jax.nn.softmax(k * bonds) @ (-bonds / 16) for k in ks])
    return log_z, energy
  log_z, energy = log_z_and_energy()
  np.testing.assert_allclose([ising_curve.kaufman_log_z(k, 4, 4) for k in ks], log_z, rtol=1e-6)
  np.testing.assert_allclose([ising_curve.finite_lattice_energy(1 / k, 4) for k in ks], energy,
                             atol=1e-5)
  # Large tori approach Onsager's infinite-lattice energy, away from T_c fastest.
  np.testing.assert_allclose(ising_curve.finite_lattice_energy(1.8, 256),
                             ising_curve.onsager_energy(1.8), atol=1e-6)


def test_curve_simulation_matches_enumeration_on_4x4():
  t = 2.5

  @jax.jit
  def moments():
    lattice = pm.ising_lattice(4, 4, 1.0 / t, 0.0, periodic=True)
    x = pm.states(16, 2, jnp.arange(2 ** 16))
    s = (2.0 * x - 1.0).reshape(-1, 4, 4)
    p = jax.nn.softmax(pm.lattice_log_potential(lattice, s))
    return p @ jnp.abs(s.mean((1, 2))), p @ (-pm.bond_sum(s) / 16)
  m_exact, e_exact = (float(v) for v in moments())
  m, e = ising_curve.simulate(1.0, 0.0, [t], 4, 200, 20, 100, 1, "random", jax.random.key(0))
  for est, want in ((m[0], m_exact), (e[0], e_exact)):
    se = est.std(ddof=1) / math.sqrt(len(est))
    assert abs(est.mean() - want) < 4.5 * se + 1e-4, (est.mean(), want, se)
