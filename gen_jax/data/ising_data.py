"""Ising-lattice configurations sampled by long checkerboard Gibbs chains from a seed.

`load("ising", split, path, options)` returns a `sources.Split` of kind
"lattice" (its only data variant is "raw") holding `x: u8[N, L, L, 1]` in {0, 1}
(spin s = 2x - 1), an image-modality field, so samples and data show as
image grids. The lattice has J = 1, no field, and a periodic (default) or
free boundary, at temperature `temperature` (K = 1/T).

Options (`config.data.options`; defaults in OPTIONS):
  size L, temperature T, periodic, num_train, num_test, chains (the most
  independent chains to run; each feeds one split, with the fewest records per
  chain that fit, see `chain_layout`), burn_in (sweeps before the first
  record), thin (sweeps between records), start ("auto": ordered starts below
  T_c, so chains do not freeze into striped domains, random ones above; or
  "random" / "ordered"), seed. Both splits come from one run (one compiled
  program, cached per process); train and test never share a chain, so they
  are independent. Example n of a split is record n // c of chain n % c (c:
  that split's chains), so any prefix of a split spreads over its chains.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors
from gen_jax.data import sources
from gen_jax.data import spec as spec_lib
from gen_jax.inference import pairwise_mrf as pm

T_C = 2.0 / math.log(1.0 + math.sqrt(2.0))     # Onsager's critical temperature, J = 1
OPTIONS = dict(size=16, temperature=2.5, periodic=True, num_train=5000, num_test=1000,
               chains=500, burn_in=1000, thin=10, start="auto", seed=0)
SPLITS = ("train", "test")


def options_of(options: dict) -> dict:
  """OPTIONS updated by `options`; unknown keys and bad values are one-line errors."""
  unknown = sorted(set(options) - set(OPTIONS))
  if unknown:
    raise errors.ConfigError(f"unknown data option(s) for 'ising': {', '.join(unknown)}; "
                             f"valid: {', '.join(OPTIONS)}")
  o = {**OPTIONS, **options}
  if not float(o["temperature"]) > 0:
    raise errors.ConfigError(f"data.options.temperature must be > 0 (got {o['temperature']})")
  for key, low in (("size", 2), ("num_train", 1), ("num_test", 1), ("chains", 2),
                   ("burn_in", 0), ("thin", 1)):
    if int(o[key]) < low:
      raise errors.ConfigError(f"data.options.{key} must be >= {low} (got {o[key]})")
  if o["start"] not in ("auto", "random", "ordered"):
    raise errors.ConfigError(errors.choices("ising start", o["start"],
                                            ("auto", "random", "ordered")))
  pm.check_bipartite(int(o["size"]), int(o["size"]), bool(o["periodic"]))
  return o


def generate(o: dict, split: str) -> np.ndarray:
  """Spins of one split, i8[N, L, L] in {-1, +1} (N = num_<split>), from the options `o`."""
  return _both_splits(tuple(sorted(o.items())))[SPLITS.index(split)]


def chain_layout(num_train: int, num_test: int, chains: int) -> tuple[int, int, int]:
  """(records per chain R, train chains, test chains): the fewest records per chain such
  that ceil(num_train / R) + ceil(num_test / R) chains fit in `chains`."""
  r = max(1, -(-(num_train + num_test) // chains))
  while -(-num_train // r) + -(-num_test // r) > chains:
    r += 1
  return r, -(-num_train // r), -(-num_test // r)


@functools.lru_cache(maxsize=4)
def _both_splits(items: tuple) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) spins from one run of independent chains: each chain feeds one split."""
  o = dict(items)
  size, n_train, n_test = int(o["size"]), int(o["num_train"]), int(o["num_test"])
  records, c_train, c_test = chain_layout(n_train, n_test, int(o["chains"]))
  temperature = float(o["temperature"])
  start = o["start"] if o["start"] != "auto" else ("ordered" if temperature < T_C else "random")
  k_start, k_chains = jax.random.split(jax.random.key(int(o["seed"])))

  @jax.jit
  def run(k_start, k_chains):
    lattice = pm.ising_lattice(size, size, 1.0 / temperature, 0.0, bool(o["periodic"]))
    s0 = pm.initial_spins(k_start, (c_train + c_test, size, size), start)
    _, rec = pm.checkerboard_chains(lattice, jax.random.split(k_chains, c_train + c_test), s0,
                                    records, int(o["burn_in"]), int(o["thin"]))
    return rec.astype(jnp.int8)                          # [chains, records, L, L]
  rec = np.asarray(run(k_start, k_chains))

  def interleave(rec, n):    # example n = record n // chains of chain n % chains
    return rec.transpose(1, 0, 2, 3).reshape(-1, size, size)[:n]
  return interleave(rec[:c_train], n_train), interleave(rec[c_train:], n_test)


def load(name: str, split: str, path: str, options: dict) -> sources.Split:
  """One split as u8[N, L, L, 1] in {0, 1} (kind "lattice"); see the module docstring."""
  del path
  if split not in SPLITS:
    raise errors.ConfigError(errors.choices(f"split of {name}:", split, SPLITS))
  o = options_of(dict(options))
  x = ((generate(o, split) + 1) // 2).astype(np.uint8)[..., None]
  arrays = {"x": x}
  return sources.Split(arrays, spec_lib.of_arrays(arrays, {"x": "image"}), binary=False,
                       kind="lattice")
