"""Orbax checkpoints of a TrainState plus JSON metadata, verified when read back.

Layout: `<workdir>/checkpoints/<step>/{state/, meta/metadata, gen_jax_files.json, ...}`.
Saves are asynchronous; a save interrupted by SIGKILL leaves only a
`<step>.orbax-checkpoint-tmp*` folder, which is never restored.

A finished save can still be damaged later (a disk error, a truncated copy, a
file edited by hand), and Orbax reads a flipped byte back as a plausible but
wrong number. Two checks guard every restore:

1. The state checksum, the authority: the metadata carries a SHA-256 of the
   state's arrays (computed from the arrays in memory before the save) and of
   the metadata itself; a restore recomputes both from what it read back.
2. The file list (`gen_jax_files.json`, written once the save has finished):
   the size and SHA-256 of each file a restore reads, checked before Orbax
   opens any, so a missing, cut or garbled file is named and Orbax never
   abandons a half-done read (whose stray callbacks print tracebacks later).

A checkpoint that fails either check, or fails to read, is `Damaged`: the run
loop skips it, names it, and takes the next newest one that verifies. A
checkpoint that verifies but has other shapes than the target is a
`Mismatch` (the config changed), which no older checkpoint would fix; it is
found from the metadata, before any array is read.
"""
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp

from gen_jax import errors, parallel

CHECKSUM = "sha256 of sorted per-array sha256(dtype, shape, bytes)"
FILES = "gen_jax_files.json"           # in each step folder: size and SHA-256 of its files
PARTIAL = ".orbax-checkpoint-tmp"       # Orbax's suffix for a save in progress
DAMAGED_DIR = "checkpoints_damaged"     # beside checkpoints/: folders set aside


class Damaged(errors.GenJaxError):
  """A checkpoint folder that cannot be read back as it was saved."""


class Mismatch(errors.GenJaxError):
  """An intact checkpoint whose arrays do not fit the requested structure."""

  def __init__(self, message: str, step: int, saved_config: dict | None):
    super().__init__(message)
    self.step = step
    self.saved_config = saved_config


@dataclasses.dataclass
class Listing:
  """What `<workdir>/checkpoints` holds, by kind.

  Attributes:
    steps: step numbers of the folders named by an integer, ascending (not yet
      verified: a damaged folder is listed too).
    partial: names of folders an interrupted save left behind.
    foreign: names of other entries (not written by the checkpointer).
  """
  steps: list
  partial: list
  foreign: list


def _host(x) -> np.ndarray:
  """The global value of one leaf on the host, whatever its sharding."""
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if isinstance(x, jax.Array):
    if x.is_fully_addressable:
      return np.asarray(x)
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def state_digest(tree) -> str:
  """SHA-256 over the arrays of `tree`, independent of its container types.

  Each leaf is hashed with its dtype and shape; the sorted leaf digests are
  hashed again, so the state saved from a TrainState and the same state read
  back as nested dicts (`restore_raw`) give the same digest.
  """
  leaves = []
  for leaf in jax.tree.leaves(tree):
    a = np.ascontiguousarray(_host(leaf))
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    leaves.append(h.hexdigest())
  return hashlib.sha256("".join(sorted(leaves)).encode()).hexdigest()


def _meta_digest(meta: dict) -> str:
  body = {k: v for k, v in meta.items() if k != "checksum"}
  return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _quiet():
  """Silences Orbax's own log lines while probing a folder; the caller reports the problem."""
  logger = logging.getLogger("absl")
  old = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    logger.setLevel(old)


def _first_line(e: Exception, limit: int = 160) -> str:
  """The first sentence of an exception's message, cut at a word boundary."""
  text = (str(e).strip().splitlines() or [""])[0] or type(e).__name__
  text = text.split(". ")[0]
  if len(text) > limit:
    text = text[:limit].rsplit(" ", 1)[0] + " ..."
  return text


def _shapes(tree) -> dict:
  return {parallel.path_str(p): (tuple(x.shape), str(x.dtype))
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _first_difference(saved: dict, wanted: dict) -> str:
  """The first array whose presence, shape or dtype differs, in words; '' if none."""
  for name in sorted(set(saved) | set(wanted), key=lambda n: (not n.startswith("params"), n)):
    a, b = saved.get(name), wanted.get(name)
    if a == b:
      continue
    if a is None:
      return f"{name} is not in the checkpoint"
    if b is None:
      return f"the checkpoint has {name}, which this model lacks"
    return (f"{name} is {a[1]}{list(a[0])} in the checkpoint but {b[1]}{list(b[0])} here")
  return ""


def _sha256_file(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _listed_files(path: str) -> dict:
  """{relative path: [bytes, sha256]} of the files a restore reads in step folder `path`.

  Orbax's commit markers and step-level metadata are left out: a restore does
  not read them, so their damage costs nothing.
  """
  out = {}
  for root, _, names in os.walk(path):
    for name in names:
      full = os.path.join(root, name)
      rel = os.path.relpath(full, path)
      if rel.startswith(FILES) or rel == "_CHECKPOINT_METADATA" or name == "commit_success.txt":
        continue
      out[rel] = [os.path.getsize(full), _sha256_file(full)]
  return out


def _files_digest(files: dict) -> str:
  return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def _layout_problem(path: str) -> str | None:
  """Why the step folder `path` cannot be a complete checkpoint, or None."""
  if not os.path.isdir(path):
    return "not a folder"
  if not os.listdir(path):
    return "empty folder"
  for rel in ("state", "meta", os.path.join("meta", "metadata"),
              os.path.join("state", "_METADATA")):
    if not os.path.exists(os.path.join(path, rel)):
      return f"missing {rel}"
  return None


class Checkpointer:
  """Keep-N, async checkpoints under `<workdir>/checkpoints`.

  Reading needs no Orbax manager: each restore opens the step folder with a
  plain Orbax checkpointer and closes it. The manager (retention, async
  saves) is made at the first save, so reading a run never creates or
  changes a folder, and no background work is left pending when a read fails.
  """

  def __init__(self, workdir: str, keep: int, use_async: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.keep = keep
    self.use_async = use_async
    self.skipped = []      # (step, reason) of the damaged checkpoints restore_latest passed
    self._manager = None
    self._unsealed = []    # saved steps whose file list is not written yet

  # Listing.

  def listing(self) -> Listing:
    steps, partial, foreign = [], [], []
    if os.path.isdir(self.directory):
      for name in sorted(os.listdir(self.directory)):
        if PARTIAL in name:
          partial.append(name)
        elif name.isdigit() and os.path.isdir(os.path.join(self.directory, name)):
          steps.append(int(name))
        else:
          foreign.append(name)
    return Listing(sorted(steps), partial, foreign)

  def all_steps(self) -> list:
    """Steps of the checkpoint folders, ascending (verified only when restored)."""
    return self.listing().steps

  def latest_step(self):
    """The newest checkpoint folder's step, or None."""
    steps = self.all_steps()
    return steps[-1] if steps else None

  def path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  # Saving.

  def save(self, step: int, state, meta: dict) -> None:
    """Starts an async save of `state` with `meta` and their checksums."""
    meta = dict(meta)
    meta["checksum"] = {"algorithm": CHECKSUM, "state": state_digest(state)}
    meta["checksum"]["meta"] = _meta_digest(meta)
    if self._manager is None:
      self._manager = ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=self.keep, enable_async_checkpointing=self.use_async, create=True))
    self.wait()              # Orbax waits for the previous save here anyway
    saved = self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    if not saved:
      raise errors.GenJaxError(
          f"checkpoint {step} was not saved: {self.directory} already holds step "
          f"{self._manager.latest_step()}; move the newer folders away or use another workdir")
    self._unsealed.append(step)

  def seal(self, step: int) -> None:
    """Writes the step folder's file list (FILES), once its save has finished.

    A restore checks the files against it before Orbax reads them: Orbax
    abandons a read of a missing, cut or garbled file half-way, with reads of
    other arrays still in flight. The list is written after the data, so a
    folder without one (a process killed in between) still restores, verified
    by the state checksum alone.
    """
    path = self.path(step)
    if not os.path.isdir(path) or os.path.exists(os.path.join(path, FILES)):
      return                 # removed by keep-N retention, or sealed already
    files = _listed_files(path)
    target = os.path.join(path, FILES)
    with open(target + ".tmp", "w") as f:
      json.dump({"files": files, "digest": _files_digest(files)}, f, indent=1, sort_keys=True)
    os.replace(target + ".tmp", target)

  def wait(self) -> None:
    """Waits for the pending save, then writes the file lists of the finished ones."""
    if self._manager is not None:
      self._manager.wait_until_finished()
    if jax.process_index() == 0:
      for step in self._unsealed:
        try:
          self.seal(step)
        except OSError:      # the folder went meanwhile; its state checksum still guards it
          pass
    self._unsealed = []

  def close(self) -> None:
    if self._manager is not None:
      try:
        self.wait()
      finally:
        self._manager.close()
        self._manager = None

  # Reading.

  def _check_files(self, step: int) -> None:
    """Raises Damaged if a file listed in the folder's FILES is missing or changed.

    A FILES that is absent or does not match its own digest is ignored: the
    state checksum still decides.
    """
    path = self.path(step)
    try:
      with open(os.path.join(path, FILES)) as f:
        listing = json.load(f)
      files = listing["files"]
      if listing["digest"] != _files_digest(files):
        return
    except (OSError, ValueError, KeyError, TypeError):
      return
    for rel, (size, digest) in sorted(files.items()):
      full = os.path.join(path, rel)
      if not os.path.isfile(full):
        raise Damaged(f"{rel} is missing")
      if os.path.getsize(full) != size:
        raise Damaged(f"{rel} has {os.path.getsize(full)} bytes, {size} when saved")
      if _sha256_file(full) != digest:
        raise Damaged(f"{rel} differs from the file saved (SHA-256)")

  def _saved_shapes(self, step: int) -> dict:
    """{array path: (shape, dtype)} from the state's metadata, without reading arrays."""
    reader = ocp.Checkpointer(ocp.StandardCheckpointHandler())
    try:
      with _quiet():
        tree = reader.metadata(os.path.join(self.path(step), "state")).item_metadata
      return _shapes(tree)
    except Exception as e:  # pylint: disable=broad-except
      raise Damaged(f"state/_METADATA unreadable: {_first_line(e)}") from e
    finally:
      reader.close()

  def _read(self, step: int, abstract_state):
    path = self.path(step)
    problem = _layout_problem(path)
    if problem:
      raise Damaged(problem)
    reader = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
    try:
      with _quiet():
        out = reader.restore(path, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    finally:
      reader.close()
    return out.state, out.meta

  def _verify(self, step: int, state, meta) -> bool:
    """Raises Damaged unless `state` and `meta` are what was saved; False if unverifiable.

    Checkpoints written before checksums existed hold exactly {config, step};
    they are restored unverified (the caller says so).
    """
    if not isinstance(meta, dict):
      raise Damaged("meta/metadata is not a JSON object")
    if set(meta) == {"config", "step"}:
      return False
    checksum = meta.get("checksum")
    if set(meta) != {"config", "step", "checksum"} or not isinstance(checksum, dict):
      raise Damaged(f"meta/metadata has unexpected keys {sorted(meta)}")
    if checksum.get("meta") != _meta_digest(meta):
      raise Damaged("meta/metadata does not match its checksum")
    if meta["step"] != step:
      raise Damaged(f"the folder is named {step} but holds step {meta['step']}")
    if checksum.get("state") != state_digest(state):
      raise Damaged("the arrays read back do not match the checksum saved with them")
    return True

  def restore(self, step: int, abstract_state):
    """(state, meta) of checkpoint `step`, restored into the shapes, dtypes and
    shardings of `abstract_state` and verified against its checksum.

    Raises Damaged for a folder that does not read back as saved and
    Mismatch for an intact checkpoint of another structure (found from the
    metadata first, so no read of the arrays is started that would fail).
    `meta["verified"]` is False for a checkpoint saved without checksums.
    """
    problem = _layout_problem(self.path(step))
    if problem:
      raise Damaged(problem)
    self._check_files(step)
    diff = _first_difference(self._saved_shapes(step), _shapes(abstract_state))
    if diff:
      _, meta = self.restore_raw(step)    # intact (else Damaged): the model changed
      raise Mismatch(diff, step, meta.get("config"))
    try:
      state, meta = self._read(step, abstract_state)
    except Exception as e:  # pylint: disable=broad-except
      # Orbax and TensorStore raise many types for a missing, cut or garbled file.
      raise Damaged(f"unreadable: {_first_line(e)}") from e
    verified = self._verify(step, state, meta)
    return state, {**meta, "verified": verified}

  def restore_raw(self, step: int):
    """(state as saved: nested dicts of arrays, meta) with no target structure, verified.

    For reading another run's parameters (fine-tuning, feature classifiers)
    without building its trainer.
    """
    self._check_files(step)
    try:
      state, meta = self._read(step, None)
    except Damaged:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise Damaged(f"unreadable: {_first_line(e)}") from e
    verified = self._verify(step, state, meta)
    return state, {**meta, "verified": verified}

  def restore_latest(self, abstract_state=None, on_skip=None, raw: bool = False):
    """(step, state, meta) of the newest checkpoint that verifies, or None if none does.

    Each damaged checkpoint met on the way is passed to `on_skip(step, reason)`
    and listed in `self.skipped`; a Mismatch is raised at once (an older
    checkpoint of the same run would not fit either).
    """
    self.skipped = []
    for step in reversed(self.all_steps()):
      try:
        state, meta = self.restore_raw(step) if raw else self.restore(step, abstract_state)
      except Damaged as e:
        self.skipped.append((step, str(e)))
        if on_skip is not None:
          on_skip(step, str(e))
        continue
      return step, state, meta
    return None

  # Repair.

  def set_aside(self, step: int) -> str:
    """Moves the folder of step `step` to `<workdir>/checkpoints_damaged/`; returns where.

    A damaged folder newer than the step a run resumes from must leave
    checkpoints/: Orbax skips saving any step not newer than the newest folder.
    """
    root = os.path.join(os.path.dirname(self.directory), DAMAGED_DIR)
    os.makedirs(root, exist_ok=True)
    dest, n = os.path.join(root, str(step)), 1
    while os.path.exists(dest):
      dest, n = os.path.join(root, f"{step}-{n}"), n + 1
    shutil.move(self.path(step), dest)
    return dest

  def remove_partial(self, name: str) -> None:
    """Deletes a folder an interrupted save left (it never held a complete checkpoint)."""
    shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)


def abstract_like(tree, sharding):
  """ShapeDtypeStructs of `tree` (itself abstract or concrete) with `sharding`.

  `sharding` is one sharding for every leaf or a tree of them shaped like `tree`.
  """
  if isinstance(sharding, jax.sharding.Sharding):
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, sharding)
