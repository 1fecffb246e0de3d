"""Metrics to `<workdir>/metrics.jsonl` and TensorBoard events (no TensorFlow).

Only process 0 writes. On resume from step s, JSONL records logged after s by
the interrupted run are dropped and TensorBoard purges events after s, so a
resumed run's curves have no duplicates.
"""
import json
import math
import os

import jax


class MetricWriter:
  """Writes scalar dicts; a no-op on processes other than 0."""

  def __init__(self, workdir: str, resume_step: int = 0):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if not self.active:
      return
    os.makedirs(workdir, exist_ok=True)
    if resume_step and os.path.exists(self.path):
      with open(self.path) as f:
        kept = [line for line in f if json.loads(line).get("step", 0) <= resume_step]
      with open(self.path, "w") as f:
        f.writelines(kept)
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._tb = SummaryWriter(os.path.join(workdir, "tb"),
                             purge_step=resume_step or None)

  def write(self, step: int, scalars: dict) -> None:
    if not self.active:
      return
    clean = {k: float(v) for k, v in scalars.items()}
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), **{
          k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()}}) + "\n")
    for k, v in clean.items():
      self._tb.add_scalar(k, v, int(step))
    self._tb.flush()

  def write_text(self, step: int, tag: str, text: str) -> None:
    """A text sample in TensorBoard's text tab."""
    if self.active:
      self._tb.add_text(tag, text, int(step))
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_jsonl(path: str) -> list:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
