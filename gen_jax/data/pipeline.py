"""In-memory batching whose order is a pure function of (seed, step).

Because batch `s` depends only on the seed and `s`, a resumed run sees exactly
the batches an uninterrupted run would, a run on P processes sees the same
global batches as a run on one, and the checkpointed `step` is the iterator's
whole state. Each process gathers only its own rows of every global batch.
"""
from typing import Iterator

import numpy as np

from gen_jax import errors


class Loader:
  """Shuffled global batches of a dataset held in memory.

  Every epoch is a fresh permutation of the N examples seeded by (seed,
  epoch); the last N mod B examples of each permutation are dropped.
  """

  def __init__(self, arrays: dict, global_batch: int, seed: int,
               process_index: int = 0, process_count: int = 1):
    self.arrays = arrays
    self.n = len(next(iter(arrays.values())))
    if global_batch > self.n:
      raise errors.ConfigError(
          f"batch_size={global_batch} exceeds the {self.n} training examples")
    if global_batch % process_count:
      raise errors.ConfigError(
          f"batch_size={global_batch} is not divisible by {process_count} processes")
    self.global_batch = global_batch
    self.local_batch = global_batch // process_count
    self.offset = process_index * self.local_batch
    self.seed = seed
    self.steps_per_epoch = self.n // global_batch
    self._perm_epoch, self._perm = -1, None

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch != self._perm_epoch:
      self._perm = np.random.default_rng((self.seed, epoch)).permutation(self.n)
      self._perm_epoch = epoch
    return self._perm

  def indices(self, step: int) -> np.ndarray:
    """Global example indices of this process's rows of batch `step`: i64[b]."""
    epoch, i = divmod(step, self.steps_per_epoch)
    start = i * self.global_batch + self.offset
    return self._permutation(epoch)[start:start + self.local_batch]

  def batch(self, step: int) -> dict:
    """Process-local rows of global batch `step`: {key: array[b, ...]}."""
    idx = self.indices(step)
    return {k: v[idx] for k, v in self.arrays.items()}

  def batches(self, step: int, k: int) -> dict:
    """k consecutive batches stacked: {key: array[k, b, ...]}."""
    if k == 1:
      return {key: v[None] for key, v in self.batch(step).items()}
    idx = np.stack([self.indices(step + j) for j in range(k)])
    return {key: v[idx] for key, v in self.arrays.items()}


def eval_batches(arrays: dict, global_batch: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[tuple[dict, np.ndarray]]:
  """Yields (process-local batch, mask f32[b]) covering every example once.

  The last global batch is padded by repeating example 0; its mask is 0 there.
  """
  n = len(next(iter(arrays.values())))
  local = global_batch // process_count
  for start in range(0, n, global_batch):
    idx = np.arange(start + process_index * local, start + (process_index + 1) * local)
    mask = (idx < n).astype(np.float32)
    idx = np.where(idx < n, idx, 0)
    yield {k: v[idx] for k, v in arrays.items()}, mask
