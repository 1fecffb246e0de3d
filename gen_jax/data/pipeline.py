"""In-memory batching whose order is a pure function of (seed, step).

Because batch `s` depends only on the seed and `s`, a resumed run sees exactly
the batches an uninterrupted run would, a run on P processes sees the same
global batches as a run on one, and the checkpointed `step` is the iterator's
whole state. Each process gathers only its own rows of every global batch.
"""
import dataclasses
import functools
from typing import Iterator

import numpy as np

from gen_jax import errors
from gen_jax.data import spec as spec_lib


class Loader:
  """Shuffled global batches of a dataset held in memory.

  Every epoch is a fresh permutation of the N examples seeded by (seed,
  epoch); the last N mod B examples of each permutation are dropped.
  """

  def __init__(self, arrays: dict, global_batch: int, seed: int,
               process_index: int = 0, process_count: int = 1, spec: dict | None = None):
    self.arrays = arrays
    self.spec = spec or spec_lib.of_arrays(arrays, {k: "image" for k in arrays})
    self.n = len(next(iter(arrays.values())))
    if global_batch < 1:
      raise errors.ConfigError(f"data.batch_size must be >= 1 (got {global_batch})")
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

  def first(self) -> dict:
    """This process's rows of the first `global_batch` examples (for initialization)."""
    return {k: v[self.offset:self.offset + self.local_batch] for k, v in self.arrays.items()}

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


class WholeSplit:
  """Every batch is the whole split in stored order, padded with rows of weight 0.

  For trainers that need every example at every step (EM). The global batch
  is N rounded up to a multiple of `multiple` (the data-parallel devices and
  processes); the field "weight" (f32, 1 for real rows, 0 for padding, which
  repeats example 0) lets sums over the batch ignore the padding.
  """

  def __init__(self, arrays: dict, spec: dict, multiple: int = 1, process_index: int = 0,
               process_count: int = 1):
    self.n = len(next(iter(arrays.values())))
    if not self.n:
      raise errors.DataError("the training split holds no examples")
    multiple = int(np.lcm(max(multiple, 1), process_count))
    self.global_batch = -(-self.n // multiple) * multiple
    local = self.global_batch // process_count
    idx = np.arange(process_index * local, (process_index + 1) * local)
    weight = (idx < self.n).astype(np.float32)
    idx = np.where(idx < self.n, idx, 0)
    self._batch = {**{k: v[idx] for k, v in arrays.items()}, WEIGHT: weight}
    self.spec = {**spec, WEIGHT: spec_lib.Field((), "float32", "weight")}
    self.steps_per_epoch = 1

  def first(self) -> dict:
    return self._batch

  def batch(self, step: int) -> dict:
    del step
    return self._batch

  def batches(self, step: int, k: int) -> dict:
    del step
    return {key: np.broadcast_to(v[None], (k,) + v.shape) for key, v in self._batch.items()}


WEIGHT = spec_lib.WEIGHT


def eval_batches(arrays: dict, global_batch: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[tuple[dict, np.ndarray]]:
  """Yields (process-local batch, mask f32[b]) covering every example once.

  The last global batch is padded by repeating example 0; its mask is 0 there.
  """
  if global_batch < 1 or global_batch % process_count:
    raise errors.ConfigError(
        f"evaluation batch_size={global_batch} must be >= 1 and divisible by the "
        f"{process_count} processes")
  n = len(next(iter(arrays.values())))
  local = global_batch // process_count
  for start in range(0, n, global_batch):
    idx = np.arange(start + process_index * local, start + (process_index + 1) * local)
    mask = (idx < n).astype(np.float32)
    idx = np.where(idx < n, idx, 0)
    yield {k: v[idx] for k, v in arrays.items()}, mask


class _Windows:
  """Random text windows (gen_jax.data.text.WindowLoader) with their spec."""

  def __init__(self, split, block_size: int, global_batch: int, seed: int,
               process_index: int, process_count: int):
    from gen_jax.data import text  # pylint: disable=g-import-not-at-top
    self._loader = text.WindowLoader(split.arrays["tokens"], block_size, global_batch, seed,
                                     process_index, process_count)
    self.spec = {"tokens": split.spec["tokens"].replace(shape=(block_size + 1,))}
    self.n = len(split.arrays["tokens"])
    self.global_batch = global_batch

  def first(self) -> dict:
    return self._loader.first()

  def batch(self, step: int) -> dict:
    return self._loader.batch(step)

  def batches(self, step: int, k: int) -> dict:
    return self._loader.batches(step, k)


def train_loader(split, data_config, seed: int, process_index: int = 0,
                 process_count: int = 1, multiple: int = 1):
  """The training batches of a split: `.spec`, `.global_batch`, `.first()`, `.batch(step)`,
  `.batches(step, k)`.

  Text streams give random windows of `data.block_size + 1` tokens; other
  splits give shuffled examples of every field (labels only with `data.labels`);
  `data.batch_size = 0` gives the whole split every step (`WholeSplit`, padded
  to a multiple of `multiple` rows). `data.classes` keeps only those labels
  (`keep_classes`); `data.corruption` perturbs every batch (`Corrupted`).
  """
  d = data_config
  split = keep_classes(split, d)
  corruption = d.get("corruption", {}) or {}
  kind, level = corruption.get("kind", "none"), corruption.get("level", 0.0)
  if kind != "none" and (d.batch_size == 0 or split.stream or split.kind != "image"):
    raise errors.ConfigError(f"data.corruption {kind!r} perturbs shuffled image batches; "
                             f"{d.name!r} ({split.kind}, batch_size={d.batch_size}) has none")
  if d.batch_size == 0:
    if split.stream:
      raise errors.ConfigError(f"dataset {d.name!r} is a text stream: data.batch_size=0 (the "
                               f"whole split) needs a dataset of examples")
    arrays = {k: v for k, v in split.arrays.items()
              if split.spec[k].modality != "label" or d.get("labels", False)}
    return WholeSplit(arrays, {k: split.spec[k] for k in arrays}, multiple, process_index,
                      process_count)
  if split.stream:
    if d.get("block_size", 0) < 1:
      raise errors.ConfigError(f"dataset {d.name!r} is a text stream: set data.block_size")
    return _Windows(split, d.block_size, d.batch_size, seed, process_index, process_count)
  arrays = {k: v for k, v in split.arrays.items()
            if split.spec[k].modality != "label" or d.get("labels", False)}
  if d.get("labels", False) and "y" not in split.arrays:
    raise errors.ConfigError(f"data.labels is set but {d.name!r} has no labels")
  loader = Loader(arrays, d.batch_size, seed, process_index, process_count,
                  spec={k: split.spec[k] for k in arrays})
  if kind == "none":
    return loader
  return Corrupted(loader, kind, level, seed, 1 if split.binary else 255)


def keep_classes(split, data_config):
  """The split restricted to the labels in `data.classes` (all of it when that is empty).

  Only the training loader calls this: evaluation splits stay whole, so a
  one-class run is tested on every class.
  """
  classes = tuple(int(c) for c in data_config.get("classes", ()) or ())
  if not classes:
    return split
  y = split.arrays.get("y")
  if split.stream or y is None:
    raise errors.ConfigError(f"data.classes needs a labelled dataset; {data_config.name!r} "
                             f"has no labels")
  present = set(np.unique(y).tolist())
  missing = [c for c in classes if c not in present]
  if missing:
    raise errors.ConfigError(
        f"data.classes: class {missing[0]} is not in {data_config.name}:"
        f"{data_config.train_split} (labels present: {sorted(present)})")
  keep = np.isin(y, classes)
  return dataclasses.replace(split, arrays={k: v[keep] for k, v in split.arrays.items()})


class Corrupted:
  """A Loader whose image batches pass through `corruptions.corrupt(kind, ., level)`.

  For training-time input perturbations (a likelihood-ratio background model
  sees "mutate"d images). The corruption works on raw images: values are
  divided by `scale` (255 for 8-bit images, 1 for binary ones), corrupted in
  [0, 1] and rounded back to the source's levels, so the data variant then
  applies to them as to any image. The key is fold_in(key(seed), s) for the
  whole global batch s, of which each process keeps its own rows (every kind
  draws its noise per value, so a row's noise depends only on its place in the
  global batch): a pure function of (seed, step), the same on any number of
  processes. It runs on the host's CPU device.
  """

  def __init__(self, loader: Loader, kind: str, level: float, seed: int, scale: int):
    import jax  # pylint: disable=g-import-not-at-top

    from gen_jax.data import corruptions  # pylint: disable=g-import-not-at-top
    corruptions.check(kind, level)
    self._loader, self.spec, self.n = loader, loader.spec, loader.n
    self.global_batch, self.steps_per_epoch = loader.global_batch, loader.steps_per_epoch
    self._fields = [k for k, f in loader.spec.items() if f.modality == "image"]
    self._cpu = jax.devices("cpu")[0]
    with jax.default_device(self._cpu):
      self._key = jax.random.fold_in(jax.random.key(seed), 0x636F72)   # "cor"
    self._static = dict(kind=kind, level=float(level), scale=scale,
                        global_batch=loader.global_batch)

  def _corrupt(self, batch: dict, step: int) -> dict:
    import jax  # pylint: disable=g-import-not-at-top
    out = dict(batch)
    with jax.default_device(self._cpu):
      for i, name in enumerate(self._fields):
        key = jax.random.fold_in(self._key, i)
        out[name] = np.asarray(_corrupt_rows_fn()(batch[name], key, np.uint32(step),
                                                  np.int32(self._loader.offset), **self._static))
    return out

  def first(self) -> dict:
    return self._loader.first()

  def batch(self, step: int) -> dict:
    return self._corrupt(self._loader.batch(step), step)

  def batches(self, step: int, k: int) -> dict:
    parts = [self.batch(step + j) for j in range(k)]
    return {key: np.stack([p[key] for p in parts]) for key in parts[0]}


@functools.cache
def _corrupt_rows_fn():
  """jit(corrupt rows `offset`.. of global batch `step`), compiled once per shape and kind."""
  import jax  # pylint: disable=g-import-not-at-top

  from gen_jax.data import corruptions  # pylint: disable=g-import-not-at-top

  def rows(x, key, step, offset, kind, level, scale, global_batch):
    full = jax.numpy.zeros((global_batch,) + x.shape[1:], x.dtype)
    full = jax.lax.dynamic_update_slice_in_dim(full, x, offset, axis=0)
    out = corruptions.corrupt(kind, full / scale, jax.random.fold_in(key, step), level)
    out = jax.lax.dynamic_slice_in_dim(out, offset, x.shape[0], axis=0)
    return jax.numpy.round(out * scale).astype(x.dtype)
  return jax.jit(rows, static_argnames=("kind", "level", "scale", "global_batch"))


def eval_examples(split, data_config) -> tuple[dict, dict, str]:
  """(arrays, spec, note) of a whole split as fixed examples for evaluation.

  A text stream becomes non-overlapping windows of `block_size + 1` tokens
  whose targets cover every next-token prediction once, except a final
  remainder shorter than a window (the note says how many are covered).
  """
  if not split.stream:
    return dict(split.arrays), dict(split.spec), ""
  from gen_jax.data import text  # pylint: disable=g-import-not-at-top
  stream, block = split.arrays["tokens"], data_config.block_size
  windows, covered = text.eval_windows(stream, block)
  note = (f"{len(windows)} windows of {block} next-token predictions, {covered} of the "
          f"{len(stream) - 1} in the split")
  return {"tokens": windows}, {"tokens": split.spec["tokens"].replace(shape=(block + 1,))}, note
