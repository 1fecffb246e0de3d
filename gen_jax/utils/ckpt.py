"""Orbax checkpointing of a TrainState plus JSON metadata (config, step).

Saves are asynchronous; a save interrupted by SIGKILL leaves only an
`<step>.orbax-checkpoint-tmp` folder, which Orbax never lists or restores, so
the latest complete checkpoint is always the one resumed.
"""
import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Keep-N, async checkpoints under `<workdir>/checkpoints`."""

  def __init__(self, workdir: str, keep: int, use_async: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=use_async, create=True))

  def latest_step(self):
    """The newest complete checkpoint's step, or None."""
    return self.manager.latest_step()

  def all_steps(self):
    return list(self.manager.all_steps())

  def save(self, step: int, state, meta: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def restore(self, step: int, abstract_state):
    """Restores into the shapes, dtypes and shardings of `abstract_state`."""
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return out.state, out.meta

  def restore_raw(self, step: int):
    """(state as saved: nested dicts of arrays, meta) with no target structure.

    For reading another run's parameters (fine-tuning, feature classifiers)
    without building its trainer.
    """
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
    return out.state, out.meta

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_like(tree, sharding):
  """ShapeDtypeStructs of `tree` (itself abstract or concrete) with `sharding`.

  `sharding` is one sharding for every leaf or a tree of them shaped like `tree`.
  """
  if isinstance(sharding, jax.sharding.Sharding):
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, sharding)
