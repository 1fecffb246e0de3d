"""Pairwise discrete Markov random fields and the 2-D Ising lattice: exact, Gibbs, loopy BP.

A pairwise MRF over V variables with S states each is
  p(x) = exp(sum_i unary[i, x_i] + sum_e pairwise[e, x_a(e), x_b(e)]) / Z,
with log-potentials `unary: f[V, S]`, `pairwise: f[E, S, S]` and an edge list
`edges: i32[E, 2]` = (a(e), b(e)). Everything is in nats (natural logs).

The 2-D Ising lattice is the special case S = 2 with spins s = 2x - 1 in {-1, +1}
on an H x W grid, p(s) ∝ exp(sum_<ij> K_ij s_i s_j + sum_i h_i s_i), where
K = J / T and h = field / T are already divided by the temperature (k_B = 1).
It is held as a `Lattice` of bond arrays so that samplers and the
pseudo-likelihood work with array shifts, and converts to a `PairwiseMRF`
(`lattice_mrf`) for enumeration and belief propagation.

Algorithms:
  exact             log Z, marginals and pairwise marginals by enumerating all S^V
                    states in chunks (a `lax.scan`; no Python loop over states).
  checkerboard      two-colour block Gibbs for the lattice: the black sites are
                    conditionally independent given the white ones (the grid is
                    bipartite), so each half-sweep samples a whole colour exactly.
  random scan       single-site Gibbs for any graph: one uniformly chosen site per step.
  synchronous       all sites at once from their conditionals given the old state:
                    NOT a valid Gibbs sampler (its stationary law is not p); kept
                    only so a test can show it.
  loopy BP          sum-product and max-product with damping, a tolerance and an
                    iteration cap, in log space; returns a `converged` flag, never
                    hides non-convergence. Exact on trees, approximate on loops;
                    `bethe_log_z` gives the Bethe estimate of log Z (exact on trees).

The exact, BP and lattice-building functions are jitted (their integer, mode
and tolerance arguments static), so calling them op by op costs one compile;
the samplers take a callable `observe` and are jitted by their callers.
"""
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gen_jax import errors

MAX_ENUMERATION_STATES = 1 << 24     # 16.8M states; ~24 binary variables


class PairwiseMRF(NamedTuple):
  """Log-potentials of a pairwise discrete MRF (a pytree; arrays may be traced).

  Attributes:
    unary: f[V, S] unary log-potentials (nats).
    edges: i32[E, 2] variable pairs (a, b) of each edge.
    pairwise: f[E, S, S] pairwise log-potentials, `pairwise[e, x_a, x_b]`.
  """
  unary: jax.Array
  edges: jax.Array
  pairwise: jax.Array


class Lattice(NamedTuple):
  """An H x W Ising lattice in units of the temperature (arrays may be traced).

  Attributes:
    k_right: f[H, W] coupling K (= J/T) of the bond (r, c)-(r, c+1 mod W); 0 where
      the bond does not exist (the last column of a free boundary).
    k_down: f[H, W] coupling of the bond (r, c)-(r+1 mod H, c); 0 likewise.
    field: f[H, W] field h (= field/T) on each site.
  """
  k_right: jax.Array
  k_down: jax.Array
  field: jax.Array


# ---------------------------------------------------------------------------
# The Ising lattice.

def bond_masks(height: int, width: int, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
  """Which bonds exist: (right f32[H, W], down f32[H, W]) in {0, 1}.

  Periodic lattices keep every bond (on a 2-wide periodic axis the two bonds
  between the same pair of sites both count, as the 4-neighbour sum does).
  """
  right, down = np.ones((height, width), np.float32), np.ones((height, width), np.float32)
  if not periodic:
    right[:, -1] = 0.0
    down[-1, :] = 0.0
  return right, down


def check_bipartite(height: int, width: int, periodic: bool) -> None:
  """Checkerboard updates need a two-colourable grid: even sides when periodic."""
  if periodic and (height % 2 or width % 2):
    raise errors.ConfigError(
        f"checkerboard Gibbs on a periodic {height}x{width} lattice needs even sides (an odd "
        f"periodic ring is not two-colourable); use an even size or a free boundary")


@functools.partial(jax.jit, static_argnums=(0, 1, 4))
def ising_lattice(height: int, width: int, coupling=1.0, field=0.0,
                  periodic: bool = True) -> Lattice:
  """A lattice with uniform (or per-bond, broadcast to [H, W]) K and h in units of 1/T."""
  right, down = bond_masks(height, width, periodic)
  dtype = jnp.result_type(float)
  k = jnp.broadcast_to(jnp.asarray(coupling, dtype), (height, width))
  h = jnp.broadcast_to(jnp.asarray(field, dtype), (height, width))
  return Lattice(k * right, k * down, h)


def neighbour_sum(lattice: Lattice, s: jax.Array) -> jax.Array:
  """Local field f_i = sum_j K_ij s_j + h_i of every site: f[..., H, W] for s f[..., H, W].

  p(s_i = +1 | rest) = sigmoid(2 f_i).
  """
  kr, kd = lattice.k_right, lattice.k_down
  out = kr * jnp.roll(s, -1, axis=-1) + jnp.roll(kr * s, 1, axis=-1)
  out = out + kd * jnp.roll(s, -1, axis=-2) + jnp.roll(kd * s, 1, axis=-2)
  return out + lattice.field


def lattice_log_potential(lattice: Lattice, s: jax.Array) -> jax.Array:
  """sum_<ij> K_ij s_i s_j + sum_i h_i s_i (= -E/T, nats): f[...] for spins f[..., H, W]."""
  pair = (lattice.k_right * s * jnp.roll(s, -1, axis=-1)
          + lattice.k_down * s * jnp.roll(s, -1, axis=-2))
  return jnp.sum(pair + lattice.field * s, axis=(-2, -1))


def bond_sum(s: jax.Array, periodic: bool = True) -> jax.Array:
  """sum_<ij> s_i s_j over nearest-neighbour bonds: f[...] for s f[..., H, W].

  The J = 1 energy of a configuration is -bond_sum (no field).
  """
  right, down = bond_masks(s.shape[-2], s.shape[-1], periodic)
  pair = right * s * jnp.roll(s, -1, axis=-1) + down * s * jnp.roll(s, -1, axis=-2)
  return jnp.sum(pair, axis=(-2, -1))


def pseudo_log_likelihood(lattice: Lattice, s: jax.Array) -> jax.Array:
  """sum_i log p(s_i | s_-i) in nats: f[...] for spins f[..., H, W] in {-1, +1}.

  A pseudo-likelihood (Besag 1975), not a likelihood: it needs no partition
  function, and its maximizer is a consistent estimator of K and h.
  """
  return jnp.sum(jax.nn.log_sigmoid(2.0 * s * neighbour_sum(lattice, s)), axis=(-2, -1))


@functools.partial(jax.jit, static_argnums=1)
def lattice_mrf(lattice: Lattice, periodic: bool) -> PairwiseMRF:
  """The lattice as a PairwiseMRF over x = (s + 1) / 2 in {0, 1}, sites row-major.

  Edges: the horizontal bonds (row-major), then the vertical ones; absent bonds
  of a free boundary are left out.
  """
  h, w = lattice.field.shape
  right, down = bond_masks(h, w, periodic)
  idx = np.arange(h * w).reshape(h, w)
  rr, rc = np.nonzero(right)
  dr, dc = np.nonzero(down)
  edges = np.concatenate([
      np.stack([idx[rr, rc], idx[rr, (rc + 1) % w]], -1),
      np.stack([idx[dr, dc], idx[(dr + 1) % h, dc]], -1)]).astype(np.int32)
  k = jnp.concatenate([lattice.k_right[rr, rc], lattice.k_down[dr, dc]])
  spin = jnp.array([-1.0, 1.0], k.dtype)
  pairwise = k[:, None, None] * spin[:, None] * spin[None, :]
  unary = lattice.field.reshape(-1)[:, None] * spin
  return PairwiseMRF(unary, jnp.asarray(edges), pairwise)


def initial_spins(key: jax.Array, shape: tuple, start: str = "random",
                  dtype=jnp.float32) -> jax.Array:
  """Starting spins `dtype`[*shape] (shape = (..., H, W)) for independent chains.

  "random": i.i.d. +-1 (a hot start); "ordered": every chain all +1 or all -1,
  the sign drawn per chain (a cold start in both phases, so below T_c the chains
  do not freeze into striped domains); "up": all +1.
  """
  one = jnp.ones((), dtype)
  if start == "random":
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), one, -one)
  if start == "ordered":
    sign = jnp.where(jax.random.bernoulli(key, 0.5, shape[:-2]), one, -one)
    return jnp.broadcast_to(sign[..., None, None], shape)
  if start == "up":
    return jnp.ones(shape, dtype)
  raise errors.ConfigError(errors.choices("Gibbs start", start, ("random", "ordered", "up")))


def colour_masks(height: int, width: int) -> np.ndarray:
  """f32[2, H, W]: mask 0 marks the sites with (r + c) even, mask 1 the odd ones."""
  parity = np.add.outer(np.arange(height), np.arange(width)) % 2
  return np.stack([parity == 0, parity == 1]).astype(np.float32)


def colour_update(lattice: Lattice, s: jax.Array, u: jax.Array, mask: jax.Array) -> jax.Array:
  """Resamples every site of one colour from p(s_i | neighbours), given uniforms u.

  Sites of one colour have all their neighbours in the other colour, so their
  conditionals are independent and this is an exact block-Gibbs update:
  s_i <- +1 with probability sigmoid(2 f_i) = (1 + tanh f_i) / 2, else -1.

  Args:
    lattice: couplings and fields.
    s: f[..., H, W] spins in {-1, +1}.
    u: f[..., H, W] uniforms in [0, 1).
    mask: f[H, W], 1 on the sites to update (a row of `colour_masks`).
  """
  up = 2.0 * u - 1.0 < jnp.tanh(neighbour_sum(lattice, s))   # tanh: cheaper than sigmoid on CPU
  return jnp.where(mask > 0, jnp.where(up, 1.0, -1.0).astype(s.dtype), s)


def checkerboard_sweep(lattice: Lattice, s: jax.Array, key: jax.Array) -> jax.Array:
  """One sweep (colour 0, then colour 1) of spins f[..., H, W] (one key for all of them).

  The two half-sweeps run as a two-step `lax.scan`: written as one expression,
  XLA fuses the second into the first and recomputes the first half-sweep for
  each of the four neighbours (about 2.5x slower on CPU).
  """
  u = jax.random.uniform(key, s.shape, s.dtype)   # disjoint sites per colour: one draw
  masks = jnp.asarray(colour_masks(*s.shape[-2:]), s.dtype)
  return lax.scan(lambda s, m: (colour_update(lattice, s, u, m), None), s, masks)[0]


def checkerboard_chain(lattice: Lattice, key: jax.Array, s: jax.Array, num_records: int,
                       burn_in: int = 0, thin: int = 1,
                       observe: Callable = lambda s: s) -> tuple[jax.Array, jax.Array]:
  """One checkerboard Gibbs chain: `burn_in` sweeps, then `num_records` x `thin` sweeps.

  Args:
    lattice: couplings and fields (broadcast against s).
    key: the chain's key; sweep t (counted from 0, burn-in included) uses
      `fold_in(key, t)`.
    s: f[H, W] starting spins in {-1, +1}.
    num_records, burn_in, thin: counts of sweeps (static).
    observe: spins f[H, W] -> pytree, recorded after every `thin`-th sweep.

  Returns:
    (final spins f[H, W], observations stacked [num_records, ...]).
  """
  # One scan over blocks (block 0 = the burn-in, block r > 0 = `thin` sweeps, each
  # a fori_loop of dynamic length), so the sweep (and its PRNG) is compiled once.
  def block(s, r):
    n = jnp.where(r == 0, burn_in, thin)
    t0 = jnp.where(r == 0, 0, burn_in + (r - 1) * thin)
    s = lax.fori_loop(0, n, lambda i, s: checkerboard_sweep(
        lattice, s, jax.random.fold_in(key, t0 + i)), s)
    return s, observe(s)

  s, rec = lax.scan(block, s, jnp.arange(num_records + 1))
  return s, jax.tree.map(lambda a: a[1:], rec)


def checkerboard_chains(lattice: Lattice, keys: jax.Array, s: jax.Array, num_records: int,
                        burn_in: int = 0, thin: int = 1, observe: Callable = lambda s: s):
  """`checkerboard_chain` vmapped over chains: keys [C], s f[C, H, W] -> ([C, H, W], [C, R, ...]).

  Each chain's trajectory depends only on its own key, not on how many chains run.
  """
  def one(k, s0):
    return checkerboard_chain(lattice, k, s0, num_records, burn_in, thin, observe)
  return jax.vmap(one)(keys, s)


# ---------------------------------------------------------------------------
# General pairwise MRFs: log-potentials, enumeration, single-site Gibbs.

def _directed(mrf: PairwiseMRF):
  """Both directions of every edge: (src i32[2E], dst i32[2E], pot f[2E, S, S] [x_src, x_dst])."""
  a, b = mrf.edges[:, 0], mrf.edges[:, 1]
  pot = jnp.concatenate([mrf.pairwise, jnp.swapaxes(mrf.pairwise, 1, 2)])
  return jnp.concatenate([a, b]), jnp.concatenate([b, a]), pot


def log_potential(mrf: PairwiseMRF, x: jax.Array) -> jax.Array:
  """Unnormalized log p (nats): f[N] for states x i32[N, V]."""
  v = mrf.unary.shape[0]
  un = jnp.sum(mrf.unary[jnp.arange(v), x], axis=-1)
  e = jnp.arange(mrf.edges.shape[0])
  pair = mrf.pairwise[e, x[:, mrf.edges[:, 0]], x[:, mrf.edges[:, 1]]]
  return un + jnp.sum(pair, axis=-1)


def num_states(mrf: PairwiseMRF) -> int:
  return int(mrf.unary.shape[1]) ** int(mrf.unary.shape[0])


def states(num_vars: int, num_values: int, index: jax.Array) -> jax.Array:
  """The states with the given indices, i32[N, V]; variable 0 is the least significant digit."""
  base = jnp.asarray(num_values, jnp.int32) ** jnp.arange(num_vars, dtype=jnp.int32)
  return (index[:, None] // base) % num_values


class Exact(NamedTuple):
  """Exact results by enumeration: log Z (nats), marginals f[V, S], pairwise f[E, S, S]."""
  log_z: jax.Array
  marginals: jax.Array
  pair_marginals: jax.Array


def _chunks(mrf: PairwiseMRF, chunk: int):
  v, s = mrf.unary.shape
  n = num_states(mrf)
  if n > MAX_ENUMERATION_STATES:
    raise errors.GenJaxError(
        f"exact enumeration of {s}^{v} = {n:,} states exceeds the limit of "
        f"{MAX_ENUMERATION_STATES:,}; use Gibbs sampling or belief propagation")
  chunk = min(chunk, n)
  return v, s, n, chunk, -(-n // chunk)


@functools.partial(jax.jit, static_argnums=1)
def exact_log_z(mrf: PairwiseMRF, chunk: int = 1 << 14) -> jax.Array:
  """log Z by enumeration of all S^V states, `chunk` at a time (nats)."""
  v, s, n, chunk, k = _chunks(mrf, chunk)

  def body(acc, i):
    idx = i * chunk + jnp.arange(chunk)
    lw = jnp.where(idx < n, log_potential(mrf, states(v, s, idx)), -jnp.inf)
    return jnp.logaddexp(acc, jax.nn.logsumexp(lw)), None
  init = jnp.full((), -jnp.inf, mrf.unary.dtype)
  return lax.scan(body, init, jnp.arange(k))[0]


@functools.partial(jax.jit, static_argnums=1)
def exact(mrf: PairwiseMRF, chunk: int = 1 << 14) -> Exact:
  """log Z, marginals p(x_i = a) and pairwise marginals p(x_a(e), x_b(e)) by enumeration."""
  v, s, n, chunk, k = _chunks(mrf, chunk)
  log_z = exact_log_z(mrf, chunk)
  dtype = mrf.unary.dtype

  def body(acc, i):
    idx = i * chunk + jnp.arange(chunk)
    x = states(v, s, idx)
    p = jnp.where(idx < n, jnp.exp(log_potential(mrf, x) - log_z), 0.0)
    oh = jax.nn.one_hot(x, s, dtype=dtype)                      # [C, V, S]
    m = jnp.einsum("n,nvs->vs", p, oh)
    pm = jnp.einsum("n,nea,neb->eab", p, oh[:, mrf.edges[:, 0]], oh[:, mrf.edges[:, 1]])
    return (acc[0] + m, acc[1] + pm), None
  zeros = (jnp.zeros((v, s), dtype), jnp.zeros(mrf.pairwise.shape, dtype))
  (m, pm), _ = lax.scan(body, zeros, jnp.arange(k))
  return Exact(log_z, m, pm)


def conditional_logits(mrf: PairwiseMRF, x: jax.Array) -> jax.Array:
  """log p(x_i = a | x_-i) up to a constant per site: f[V, S] for one state x i32[V]."""
  src, dst, pot = _directed(mrf)
  msg = pot[jnp.arange(pot.shape[0]), :, x[dst]]              # [2E, S]
  return mrf.unary + jax.ops.segment_sum(msg, src, num_segments=mrf.unary.shape[0])


def random_scan_gibbs(mrf: PairwiseMRF, key: jax.Array, x: jax.Array, num_records: int,
                      thin: int = 1, observe: Callable = lambda x: x):
  """Single-site random-scan Gibbs for any pairwise MRF (one chain).

  Step t picks a site uniformly and resamples it from p(x_i | x_-i) (a kernel
  in detailed balance with p). Records `observe(x)` after every `thin` steps
  (thin = V is one sweep on average). x: i32[V] start. Returns (x, records).
  """
  v = mrf.unary.shape[0]

  def step(x, t):
    k_site, k_value = jax.random.split(jax.random.fold_in(key, t))
    i = jax.random.randint(k_site, (), 0, v)
    logits = conditional_logits(mrf, x)[i]
    return x.at[i].set(jax.random.categorical(k_value, logits).astype(x.dtype)), None

  def record(x, r):
    x, _ = lax.scan(step, x, r * thin + jnp.arange(thin))
    return x, observe(x)
  return lax.scan(record, x, jnp.arange(num_records))


def synchronous_step(mrf: PairwiseMRF, key: jax.Array, x: jax.Array) -> jax.Array:
  """WRONG on purpose: every site at once from p(x_i | x_-i) of the OLD state.

  This "parallel Gibbs" update is a different Markov chain whose stationary
  distribution is not p (on two strongly coupled spins it puts mass 1/2 on the
  anti-aligned states whatever the coupling). It exists only so a test can show
  that; use `checkerboard_chain` on lattices or `random_scan_gibbs` elsewhere.
  """
  return jax.random.categorical(key, conditional_logits(mrf, x)).astype(x.dtype)


# ---------------------------------------------------------------------------
# Loopy belief propagation.

class BPResult(NamedTuple):
  """Output of `belief_propagation`.

  Attributes:
    log_beliefs: f[V, S] normalized log beliefs: log marginals (sum-product,
      logsumexp = 0) or log max-marginals (max-product, max = 0).
    log_pair_beliefs: f[E, S, S] the same for the edge pairs (x_a(e), x_b(e)).
    log_messages: f[2E, S] final log messages (edge e a->b is row e, b->a is row E+e).
    converged: bool[]: the largest message change fell below `tol`.
    iterations: i32[] message updates done.
    max_delta: f[] largest change of a log message in the last update.
  """
  log_beliefs: jax.Array
  log_pair_beliefs: jax.Array
  log_messages: jax.Array
  converged: jax.Array
  iterations: jax.Array
  max_delta: jax.Array

  def map_state(self) -> jax.Array:
    """argmax of each max-product belief: i32[V] (the MAP on a tree without ties)."""
    return jnp.argmax(self.log_beliefs, axis=-1)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def belief_propagation(mrf: PairwiseMRF, mode: str = "sum", damping: float = 0.0,
                       tol: float = 1e-6, max_iters: int = 200) -> BPResult:
  """Loopy belief propagation in log space with a flooding schedule.

  Every iteration replaces all 2E messages at once:
    m_{i->j}(b) = reduce_a [unary_i(a) + sum_{k in N(i), k != j} m_{k->i}(a) + psi_ij(a, b)],
  reduce = logsumexp (mode "sum") or max (mode "max"), normalized per message,
  then damped: log m <- (1 - damping) log m_new + damping log m_old. It stops
  when max |log m_new - log m_old| < tol or after `max_iters` iterations
  (`lax.while_loop`). On a tree it converges to the exact marginals
  (max-marginals) within diameter + 1 iterations; on loopy graphs the fixed
  point is an approximation and may not be reached: check `converged`.
  """
  if mode not in ("sum", "max"):
    raise errors.ConfigError(errors.choices("belief propagation mode", mode, ("sum", "max")))
  if not 0.0 <= damping < 1.0:
    raise errors.ConfigError(f"damping must be in [0, 1) (got {damping})")
  reduce = jax.nn.logsumexp if mode == "sum" else jnp.max
  v, s = mrf.unary.shape
  src, dst, pot = _directed(mrf)
  ne = mrf.edges.shape[0]
  rev = (jnp.arange(2 * ne) + ne) % (2 * ne)

  def normalize(lm):
    return lm - reduce(lm, axis=-1, keepdims=True)

  def cavity(msgs):
    """unary_src + incoming_src - m_{dst->src}: f[2E, S]."""
    incoming = jax.ops.segment_sum(msgs, dst, num_segments=v)
    return mrf.unary[src] + incoming[src] - msgs[rev]

  def update(msgs):
    new = normalize(reduce(cavity(msgs)[:, :, None] + pot, axis=1))
    return (1.0 - damping) * new + damping * msgs

  def cond(carry):
    _, it, delta = carry
    return (it < max_iters) & (delta >= tol)

  def body(carry):
    msgs, it, _ = carry
    new = update(msgs)
    return new, it + 1, jnp.max(jnp.abs(new - msgs))

  msgs0 = jnp.zeros((2 * ne, s), mrf.unary.dtype)
  inf = jnp.asarray(jnp.inf, mrf.unary.dtype)
  msgs, it, delta = lax.while_loop(cond, body, (msgs0, jnp.zeros((), jnp.int32), inf))
  incoming = jax.ops.segment_sum(msgs, dst, num_segments=v)
  log_b = normalize(mrf.unary + incoming)
  cav = cavity(msgs)
  pair = cav[:ne, :, None] + cav[ne:, None, :] + mrf.pairwise
  pair = pair - reduce(pair.reshape(ne, -1), axis=-1)[:, None, None]
  return BPResult(log_b, pair, msgs, delta < tol, it, delta)


@jax.jit
def bethe_log_z(mrf: PairwiseMRF, bp: BPResult) -> jax.Array:
  """Bethe estimate of log Z (= minus the Bethe free energy) from sum-product beliefs.

  log Z_B = sum_i E_{b_i}[unary_i] + sum_e E_{b_e}[psi_e] + sum_e H(b_e)
            - sum_i (deg_i - 1) H(b_i)   (nats); exact on trees.
  """
  b, be = jnp.exp(bp.log_beliefs), jnp.exp(bp.log_pair_beliefs)
  deg = jnp.zeros(mrf.unary.shape[0], b.dtype).at[mrf.edges.reshape(-1)].add(1.0)
  energy = jnp.sum(b * mrf.unary) + jnp.sum(be * mrf.pairwise)
  h_node = -jnp.sum(jax.scipy.special.xlogy(b, b), axis=-1)
  h_edge = -jnp.sum(jax.scipy.special.xlogy(be, be), axis=(-2, -1))
  return energy + jnp.sum(h_edge) - jnp.sum((deg - 1.0) * h_node)
