"""Sequences sampled from known hidden Markov models (numpy, seeded; no model code).

Datasets (`load(name, split, path, options) -> sources.Split`, kind "sequence"):
  casino        the occasionally dishonest casino (Durbin, Eddy, Krogh &
                Mitchison 1998, Biological Sequence Analysis, ch. 3; the
                dynamax docs' example): a fair die (1/6 each) and a loaded die
                (0.1 for 1..5, 0.5 for 6), A = [[0.95, 0.05], [0.10, 0.90]],
                start (0.5, 0.5). Fields:
                  obs:    i32[N, T] tokens, ids 0..5 for faces "1".."6"
                  length: i32[N] valid steps (padding steps hold 0)
                  states: i32[N, T] tokens, the true hidden state (0 fair,
                          1 loaded), for scoring Viterbi paths
  hmm_gaussian  a Gaussian-emission HMM drawn from `param_seed`: K states
                (option num_states, default 3) with means 3 apart on a circle
                (D = option dim, default 2; the rest of the coordinates 0),
                diagonal variances in [0.25, 1], sticky transitions (0.9 on
                the diagonal, the rest Dirichlet(1) shared) and a Dirichlet(1)
                start. Fields obs: f32[N, T, D] points, length, states.
Options (data.options): num_sequences (default 100), seq_length (1000),
min_length (= seq_length; a smaller value draws each length uniformly in
[min_length, seq_length]), seed (0); hmm_gaussian also num_states, dim,
param_seed (0). Each split draws from its own stream (seed, split index), so
train and test are independent samples of the same model; `true_params` gives
the model.
"""
import numpy as np

from gen_jax import errors
from gen_jax.data import sources
from gen_jax.data import spec as spec_lib

NAMES = ("casino", "hmm_gaussian")
FACES = ("1", "2", "3", "4", "5", "6")
CASINO = dict(
    start=np.array([0.5, 0.5]),
    trans=np.array([[0.95, 0.05], [0.10, 0.90]]),
    emission=np.array([[1 / 6] * 6, [0.1] * 5 + [0.5]]),
)
DEFAULTS = dict(num_sequences=100, seq_length=1000, min_length=0, seed=0,
                num_states=3, dim=2, param_seed=0)
_SPLITS = ("train", "test")
_KEYS = {"casino": ("num_sequences", "seq_length", "min_length", "seed"),
         "hmm_gaussian": ("num_sequences", "seq_length", "min_length", "seed", "num_states",
                          "dim", "param_seed")}


def _options(name: str, options: dict) -> dict:
  if name not in NAMES:
    raise errors.ConfigError(errors.choices("HMM dataset", name, NAMES))
  unknown = sorted(set(options) - set(_KEYS[name]))
  if unknown:
    raise errors.ConfigError(f"unknown data.options {', '.join(unknown)} for {name!r}; valid: "
                             f"{', '.join(_KEYS[name])}")
  o = {k: DEFAULTS[k] for k in _KEYS[name]}
  for k, v in options.items():
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
      raise errors.ConfigError(f"data.options.{k} must be an integer (got {v!r})")
    o[k] = int(v)
  o["min_length"] = o["min_length"] or o["seq_length"]
  if o["num_sequences"] < 1 or o["seq_length"] < 1:
    raise errors.ConfigError(f"data.options num_sequences and seq_length must be >= 1 (got "
                             f"{o['num_sequences']}, {o['seq_length']})")
  if not 1 <= o["min_length"] <= o["seq_length"]:
    raise errors.ConfigError(f"data.options.min_length must be in [1, seq_length="
                             f"{o['seq_length']}] (got {o['min_length']})")
  if name == "hmm_gaussian" and (o["num_states"] < 1 or o["dim"] < 1):
    raise errors.ConfigError(f"data.options num_states and dim must be >= 1 (got "
                             f"{o['num_states']}, {o['dim']})")
  return o


def true_params(name: str, options: dict | None = None) -> dict:
  """The generating model in probability space (float64 numpy).

  Returns {"start": [K], "trans": [K, K]} plus "emission": [K, 6] (casino) or
  "means", "vars": [K, D] (hmm_gaussian, diagonal variances).
  """
  o = _options(name, dict(options or {}))
  if name == "casino":
    return {k: v.copy() for k, v in CASINO.items()}
  k, d = o["num_states"], o["dim"]
  rng = np.random.default_rng(o["param_seed"])
  angle = 2 * np.pi * np.arange(k) / k
  radius = 3.0 / (2 * np.sin(np.pi / k)) if k > 1 else 0.0    # neighbours 3 apart
  means = np.zeros((k, d))
  means[:, 0] = radius * np.cos(angle)
  if d > 1:
    means[:, 1] = radius * np.sin(angle)
  variances = rng.uniform(0.25, 1.0, (k, d))
  off = rng.dirichlet(np.ones(max(k - 1, 1)), size=k)
  trans = np.full((k, k), 0.0)
  for i in range(k):
    if k == 1:
      trans[i, i] = 1.0
    else:
      trans[i, i] = 0.9
      trans[i, np.arange(k) != i] = 0.1 * off[i]
  start = rng.dirichlet(np.ones(k))
  return {"start": start, "trans": trans, "means": means, "vars": variances}


def sample_states(rng: np.random.Generator, start: np.ndarray, trans: np.ndarray,
                  n: int, t: int) -> np.ndarray:
  """i64[n, t] Markov chains (vectorised over chains, one loop over time on the host)."""
  z = np.empty((n, t), np.int64)
  cum_start, cum_trans = np.cumsum(start), np.cumsum(trans, axis=1)
  u = rng.random((n, t))
  z[:, 0] = np.minimum(np.searchsorted(cum_start, u[:, 0], side="right"), len(start) - 1)
  for s in range(1, t):
    rows = cum_trans[z[:, s - 1]]
    z[:, s] = np.minimum((u[:, s, None] >= rows).sum(1), len(start) - 1)
  return z


def load(name: str, split: str, path: str = "", options: dict | None = None) -> sources.Split:
  """One split of an HMM dataset as a sources.Split (see the module docstring)."""
  del path
  o = _options(name, dict(options or {}))
  if split not in _SPLITS:
    raise errors.ConfigError(errors.choices(f"split of {name}:", split, _SPLITS))
  p = true_params(name, o)
  n, t = o["num_sequences"], o["seq_length"]
  rng = np.random.default_rng((o["seed"], _SPLITS.index(split)))
  lengths = rng.integers(o["min_length"], t + 1, n)
  states = sample_states(rng, p["start"], p["trans"], n, t)
  valid = np.arange(t)[None, :] < lengths[:, None]
  if name == "casino":
    cum = np.cumsum(p["emission"], axis=1)[states]              # [n, t, 6]
    obs = np.minimum((rng.random((n, t, 1)) >= cum).sum(-1), 5)
    obs = np.where(valid, obs, 0).astype(np.int32)
    obs_field = spec_lib.Field((t,), "int32", "tokens", 6, FACES)
  else:
    eps = rng.standard_normal((n, t, p["means"].shape[1]))
    obs = p["means"][states] + np.sqrt(p["vars"][states]) * eps
    obs = np.where(valid[..., None], obs, 0.0).astype(np.float32)
    obs_field = spec_lib.Field(obs.shape[1:], "float32", "points")
  k = len(p["start"])
  arrays = {"obs": obs, "length": lengths.astype(np.int32),
            "states": np.where(valid, states, 0).astype(np.int32)}
  spec = {"obs": obs_field, "length": spec_lib.Field((), "int32", "length"),
          "states": spec_lib.Field((t,), "int32", "tokens", k)}
  return sources.Split(arrays, spec, kind="sequence")
