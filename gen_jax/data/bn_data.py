"""Cases sampled from a true Bayesian network: the "bnlearn" source.

`load("bnlearn", split, path, options)` returns `x: i32[N, V]`, one column per
variable of the network (in its BIF declaration order), column k in
[0, card_k), modality "table", Split kind "table". The cases are exact
ancestral samples of the network drawn with numpy, seeded by
(options.seed, split), so train and test are independent and every run sees
the same data.

Options (config data.options):
  network    "asia" (embedded), a bnlearn name or a .bif[.gz] file; data.path,
             when set, is the file (see gen_jax.data.bif.find).
  num_train  cases in "train" (default 1000).
  num_test   cases in "test" (default 1000).
  hidden     names of variables whose columns are unobserved: they hold -1.
  seed       default 0.
"""
import numpy as np

from gen_jax import errors
from gen_jax.data import bif, sources
from gen_jax.data import spec as spec_lib

SPLITS = ("train", "test")
DEFAULT_SIZES = {"train": 1000, "test": 1000}
HIDDEN = -1   # the value of an unobserved column


def forward_sample(net: bif.Network, n: int, rng: np.random.Generator) -> np.ndarray:
  """n exact samples of the joint by ancestral sampling: i32[n, V]."""
  x = np.zeros((n, len(net.variables)), np.int32)
  for v in net.graph.topological_order:
    pa = net.parents[v]
    probs = net.cpts[v][tuple(x[:, u] for u in pa)] if pa else np.broadcast_to(
        net.cpts[v], (n, net.cpts[v].shape[-1]))
    cum = np.cumsum(probs, axis=-1)
    u = rng.random((n, 1)) * cum[:, -1:]
    x[:, v] = np.minimum((cum <= u).sum(axis=-1), probs.shape[-1] - 1)
  return x


def load(name: str, split: str, path: str, options: dict) -> sources.Split:
  del name
  if split not in SPLITS:
    raise errors.ConfigError(errors.choices("split of bnlearn:", split, SPLITS))
  net = bif.find(str(options.get("network", "asia")), path)
  n = int(options.get(f"num_{split}", DEFAULT_SIZES[split]))
  if n < 1:
    raise errors.ConfigError(f"data.options.num_{split} must be >= 1 (got {n})")
  seed = int(options.get("seed", 0))
  hidden = options.get("hidden", ())
  hidden = (hidden,) if isinstance(hidden, str) else tuple(hidden)
  ids = [net.graph.index(h) for h in hidden]
  x = forward_sample(net, n, np.random.default_rng([seed, SPLITS.index(split)]))
  x[:, ids] = HIDDEN
  field = spec_lib.Field((len(net.variables),), "int32", "table", net.cards,
                         columns=tuple(net.variables))
  return sources.Split({"x": x}, {"x": field}, kind="table")
