"""Data parallelism over a device mesh: one code path for 1 CPU, N GPUs, TPU pods.

The mesh has one axis, "data". Batches are sharded along it and everything
else (parameters, optimizer state) is replicated; `jax.jit` inserts the
gradient all-reduce. On several hosts, `initialize` calls
`jax.distributed.initialize`, each process feeds its own rows of every global
batch, and `to_global` assembles them with `jax.make_array_from_process_local_data`.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from gen_jax import errors

AXIS = "data"


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


def make_mesh() -> jax.sharding.Mesh:
  return jax.make_mesh((jax.device_count(),), (AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch(global_batch: int) -> None:
  if global_batch % jax.device_count():
    raise errors.ConfigError(
        f"batch_size={global_batch} must be divisible by the {jax.device_count()} devices")


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


def replicate(tree, mesh):
  return jax.device_put(tree, replicated(mesh))


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
