"""Parallelism over a device mesh: one code path for 1 CPU, N GPUs, TPU pods.

The mesh has two axes, "data" and "model" (`config.mesh`). Batches are sharded
along "data". Parameters, optimizer state and EMA follow `config.sharding`:
  replicated  on every device (pure data parallelism; the default)
  fsdp        each array split along its largest dimension divisible by the
              "data" axis (ZeRO-3 style: parameters and optimizer state
              sharded over the data-parallel devices, gathered per use)
  tensor      the family's tensor-parallel rules (`Family.sharding_rules`:
              regexes on parameter paths -> partition specs over "model"),
              everything else replicated
`jax.jit` inserts the collectives (gradient all-reduce, all-gathers). On
several hosts, `initialize` calls `jax.distributed.initialize`, each process
feeds its own rows of every global batch, and `to_global` assembles them with
`jax.make_array_from_process_local_data`.
"""
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from gen_jax import errors

AXIS = "data"
MODEL_AXIS = "model"
STRATEGIES = ("replicated", "fsdp", "tensor")


def initialize(dist: ml_collections.ConfigDict) -> None:
  """Joins a multi-process job when `dist.enabled`; a no-op otherwise."""
  if not dist.enabled:
    return
  if dist.cpu_collectives:
    jax.config.update("jax_cpu_collectives_implementation", dist.cpu_collectives)
  kwargs = {}
  if dist.coordinator_address:
    kwargs["coordinator_address"] = dist.coordinator_address
  if dist.num_processes > 0:
    kwargs["num_processes"] = dist.num_processes
  if dist.process_id >= 0:
    kwargs["process_id"] = dist.process_id
  jax.distributed.initialize(**kwargs)


def make_mesh(data: int = -1, model: int = 1) -> jax.sharding.Mesh:
  """A (data, model) mesh over all devices; -1 = the devices the other axis leaves."""
  n = jax.device_count()
  if model < 1 or (data != -1 and data < 1):
    raise errors.ConfigError(f"mesh axes must be >= 1 (or data=-1); got data={data}, "
                             f"model={model}")
  if data == -1:
    if n % model:
      raise errors.ConfigError(f"mesh.model={model} does not divide the {n} devices; "
                               f"set --config.mesh.model to a divisor of {n}")
    data = n // model
  if data * model != n:
    raise errors.ConfigError(f"mesh data x model = {data} x {model} != {n} devices; set "
                             f"--config.mesh.data=-1 to use all of them")
  return jax.make_mesh((data, model), (AXIS, MODEL_AXIS),
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)


def path_str(path) -> str:
  """'params/model/h_0/attn/c_attn/kernel' from a jax key path."""
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
  return "/".join(parts)


def state_shardings(tree, mesh, strategy: str = "replicated", rules=()):
  """NamedShardings for every leaf of `tree` (abstract or concrete) under `strategy`.

  `rules` are (regex, spec) pairs for "tensor": the first regex found in a
  leaf's path (e.g. "params/model/h_0/attn/c_attn/kernel"; optimizer moments
  have the same suffix) gives its spec, a tuple of axis names or None per
  dimension. A spec whose axis does not divide the dimension is an error
  naming the fix.
  """
  if strategy not in STRATEGIES:
    raise errors.ConfigError(errors.choices("sharding strategy", strategy, STRATEGIES))
  n_data = mesh.shape[AXIS]
  compiled = [(re.compile(r), tuple(spec)) for r, spec in rules]
  if strategy == "tensor" and not compiled:
    raise errors.ConfigError("sharding='tensor': this family defines no tensor-parallel "
                             "rules; use 'replicated' or 'fsdp'")

  def one(path, leaf):
    shape = tuple(getattr(leaf, "shape", ()))
    if strategy == "fsdp" and shape:
      # The largest dimension the data axis divides; replicated if none does.
      dims = [i for i in sorted(range(len(shape)), key=lambda i: -shape[i])
              if shape[i] % n_data == 0 and shape[i] >= n_data]
      if dims and n_data > 1:
        spec = [None] * len(shape)
        spec[dims[0]] = AXIS
        return NamedSharding(mesh, P(*spec))
    if strategy == "tensor" and shape:
      name = path_str(path)
      for regex, spec in compiled:
        if regex.search(name):
          if len(spec) != len(shape):
            raise errors.ConfigError(f"sharding rule {regex.pattern!r} has {len(spec)} axes "
                                     f"but {name} has shape {shape}")
          for dim, axis in zip(shape, spec, strict=True):
            if axis is not None and dim % mesh.shape[axis]:
              raise errors.ConfigError(
                  f"sharding rule {regex.pattern!r} splits dimension {dim} of {name} over "
                  f"mesh axis {axis!r} of size {mesh.shape[axis]}, which does not divide it; "
                  f"choose --config.mesh.{axis} dividing {dim} or sharding='replicated'")
          return NamedSharding(mesh, P(*spec))
    return NamedSharding(mesh, P())
  return jax.tree_util.tree_map_with_path(one, tree)


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch(global_batch: int, mesh=None) -> None:
  n = jax.device_count() if mesh is None else mesh.shape[AXIS]
  if global_batch % n:
    raise errors.ConfigError(
        f"batch_size={global_batch} must be divisible by the {n} data-parallel devices")


def to_global(tree, mesh, batch_dim: int = 0):
  """Process-local numpy rows -> global arrays sharded over "data" on `batch_dim`."""
  spec = P(*([None] * batch_dim + [AXIS]))
  sharding = NamedSharding(mesh, spec)

  def one(x):
    shape = list(x.shape)
    shape[batch_dim] *= jax.process_count()
    return jax.make_array_from_process_local_data(sharding, x, tuple(shape))
  return jax.tree.map(one, tree)


def to_host(tree):
  """Global arrays -> numpy on every process (gathers across hosts if needed)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def is_main() -> bool:
  return jax.process_index() == 0


def fold(rng: jax.Array, *names: str | int) -> jax.Array:
  """Derives a key by folding in names (hashed to uint32) or integers."""
  for name in names:
    data = name if isinstance(name, int) else np.uint32(hash_str(name))
    rng = jax.random.fold_in(rng, jnp.asarray(data, jnp.uint32))
  return rng


def hash_str(s: str) -> int:
  """Stable 32-bit hash of a string (Python's hash() is salted per process)."""
  h = 2166136261
  for ch in s.encode():
    h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
  return h
