"""Lattice Markov random field (Ising model) fitted by maximum pseudo-likelihood.

Model: binary images x in {0, 1}^{H x W} (one channel) as spins s = 2x - 1,
  p(s) = exp(sum_<ij> K_ij s_i s_j + sum_i h_i s_i) / Z(K, h),
with nearest-neighbour bonds on a periodic or free-boundary grid
(`gen_jax.inference.pairwise_mrf`). K and h are dimensionless (coupling and
field divided by the temperature): data sampled at temperature T with J = 1
has K = 1/T.

Training ("sgd" trainer) minimizes the negative PSEUDO-log-likelihood per
configuration, -sum_i log p(s_i | s_-i) (nats), which needs no partition
function and is a consistent estimator (Besag 1975). It is not the
likelihood, and nothing here calls it one. There is no EM for this family.

Config (`config.model`):
  coupling: "shared" (one K) | "per_edge" (one K per bond, arrays [H, W] for the
    right and down bonds).
  field: "shared" (one h) | "per_site" | "none" (h = 0).
  periodic: periodic boundary (True) or free.
  init_coupling: starting K (default 0, the independent-spin model).
  exact_max_sites: lattices with at most this many sites (default 16, 2^16
    states) also get the exact log-likelihood by enumeration in `eval_fn`.
  size: expected side (0 = take H, W from the data).
Sampling (`config.sample.sweeps`, default 500): checkerboard Gibbs from random
starts, returned as images f32[n, H, W, 1] in {0, 1}.

`eval_fn` returns per configuration `pseudo_log_px` (nats, pseudo-likelihood)
and, on small lattices, `log_px` (nats, exact by enumeration).
"""
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types
from gen_jax.inference import pairwise_mrf as pm

COUPLINGS = ("shared", "per_edge")
FIELDS = ("shared", "per_site", "none")
KEYS = ("coupling", "field", "periodic", "init_coupling", "exact_max_sites", "size")


def _check(m, shape: tuple) -> None:
  unknown = sorted(set(m.keys()) - set(KEYS))
  if unknown:
    raise errors.ConfigError(f"unknown model key(s) for family 'mrf': {', '.join(unknown)}; "
                             f"valid: {', '.join(KEYS)}")
  if m.get("coupling", "shared") not in COUPLINGS:
    raise errors.ConfigError(errors.choices("mrf coupling", m.coupling, COUPLINGS))
  if m.get("field", "shared") not in FIELDS:
    raise errors.ConfigError(errors.choices("mrf field", m.field, FIELDS))
  if len(shape) != 3 or shape[-1] != 1:
    raise errors.ConfigError(f"family 'mrf' needs one-channel lattice images [H, W, 1] (got "
                             f"{list(shape)})")
  size = int(m.get("size", 0))
  if size and tuple(shape[:2]) != (size, size):
    raise errors.ConfigError(f"model.size={size} but the data are {shape[0]}x{shape[1]} "
                             f"lattices; set model.size=0 or data.options.size={size}")


def lattice_of(params: dict, height: int, width: int, periodic: bool) -> pm.Lattice:
  """The `pm.Lattice` of the family's parameters `params["model"]` (absent bonds masked)."""
  p = params["model"]
  right, down = pm.bond_masks(height, width, periodic)
  k = p["coupling"]
  k_right, k_down = (k["right"], k["down"]) if isinstance(k, dict) else (k, k)
  field = p.get("field", jnp.zeros((), jnp.asarray(right).dtype))
  dtype = jnp.result_type(k_right)
  return pm.Lattice(jnp.broadcast_to(k_right * right, (height, width)).astype(dtype),
                    jnp.broadcast_to(k_down * down, (height, width)).astype(dtype),
                    jnp.broadcast_to(field, (height, width)).astype(dtype))


def learned_couplings(params: dict, periodic: bool = True) -> dict:
  """Summary of the fitted K and h: {"beta_j": mean K over bonds, "beta_j_std", "beta_h"}."""
  p = params["model"]
  k = p["coupling"]
  if isinstance(k, dict):
    h, w = k["right"].shape
    right, down = pm.bond_masks(h, w, periodic)
    ks = jnp.concatenate([k["right"][right > 0], k["down"][down > 0]])
  else:
    ks = jnp.reshape(k, (1,))
  field = p.get("field", jnp.zeros(()))
  return {"beta_j": jnp.mean(ks), "beta_j_std": jnp.std(ks), "beta_h": jnp.mean(field)}


def spins(x: jax.Array) -> jax.Array:
  """Images f[B, H, W, 1] in {0, 1} -> spins f[B, H, W] in {-1, +1} (real dtype)."""
  return 2.0 * x[..., 0].astype(types.real_dtype()) - 1.0


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """The lattice MRF family for the image field "x" of shape (H, W, 1)."""
  shape = tuple(spec["x"].shape)
  m = config.model
  _check(m, shape)
  height, width = int(shape[0]), int(shape[1])
  coupling, field = m.get("coupling", "shared"), m.get("field", "shared")
  periodic = bool(m.get("periodic", True))
  pm.check_bipartite(height, width, periodic)
  sites = height * width
  exact_max = int(m.get("exact_max_sites", 16))
  with_exact = sites <= exact_max
  if with_exact and 2 ** sites > pm.MAX_ENUMERATION_STATES:
    raise errors.ConfigError(f"model.exact_max_sites={exact_max} allows {sites} sites, 2^{sites} "
                             f"states: more than enumeration can hold; lower it")
  sweeps = int(config.sample.get("sweeps", 500))

  def init(rng, batch):
    del rng, batch
    dtype = types.real_dtype()
    k0 = jnp.asarray(m.get("init_coupling", 0.0), dtype)
    p = {"coupling": k0 if coupling == "shared" else
         {"right": jnp.full((height, width), k0), "down": jnp.full((height, width), k0)}}
    if field == "shared":
      p["field"] = jnp.zeros((), dtype)
    elif field == "per_site":
      p["field"] = jnp.zeros((height, width), dtype)
    return {"model": p}, {}

  def lattice(params):
    return lattice_of(params, height, width, periodic)

  def loss(player, params, state, batch, rng):
    del player, rng
    pl = pm.pseudo_log_likelihood(lattice(params), spins(batch["x"]))
    summary = learned_couplings(params, periodic)
    metrics = {"pseudo_nll_per_site": -jnp.mean(pl) / sites,
               "beta_j": summary["beta_j"], "beta_h": summary["beta_h"]}
    return -jnp.mean(pl), (state, metrics)

  def eval_fn(params, state, batch, rng, **kw):
    del state, rng, kw
    lat, s = lattice(params), spins(batch["x"])
    out = {"pseudo_log_px": pm.pseudo_log_likelihood(lat, s)}
    if with_exact:
      log_z = pm.exact_log_z(pm.lattice_mrf(lat, periodic))
      out["log_px"] = pm.lattice_log_potential(lat, s) - log_z
    return out

  def sample(params, state, rng, n):
    del state
    k_start, k_chains = jax.random.split(rng)
    s0 = pm.initial_spins(k_start, (n, height, width), "random", types.real_dtype())
    s, _ = pm.checkerboard_chains(lattice(params), jax.random.split(k_chains, n), s0,
                                  num_records=0, burn_in=sweeps)
    return ((s + 1.0) / 2.0).astype(jnp.float32)[..., None]

  units = {"pseudo_log_px": "nats per configuration, PSEUDO-likelihood sum_i log p(x_i | x_-i) "
                            "(not a likelihood)"}
  if with_exact:
    units["log_px"] = f"nats per configuration, exact (enumeration of 2^{sites} states)"
  return types.Family(players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
                      eval_units=units, sample_field="x")
