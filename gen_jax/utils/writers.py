"""Metrics to `<workdir>/metrics.jsonl` and TensorBoard events (no TensorFlow).

Only process 0 writes. A training invocation that starts at step s (a resume,
or s = 0 for a run that starts over) first cuts both records back to step s:
JSONL rows and TensorBoard events logged after s by an earlier, interrupted
invocation are removed from the files themselves, so the curves of a resumed
run have no duplicates in any reader. A row or event cut off mid-write (a
killed process) is dropped with them.
"""
import glob
import json
import math
import os
import struct
import time

import jax


def truncate(workdir: str, step: int) -> tuple[int, int]:
  """Keeps only the records of steps <= `step`; returns (rows, events) removed.

  A partial or unreadable row of metrics.jsonl is removed too (a process
  killed while writing leaves one).
  """
  rows = _truncate_jsonl(os.path.join(workdir, "metrics.jsonl"), step)
  events = sum(_truncate_events(path, step)
               for path in sorted(glob.glob(os.path.join(workdir, "tb", "events.out.tfevents.*"))))
  return rows, events


def _truncate_jsonl(path: str, step: int) -> int:
  if not os.path.isfile(path):
    return 0
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")
  kept, dropped = [], 0
  for line in lines:
    if not line.strip():
      continue
    row = _parse(line)
    if row is not None and isinstance(row.get("step"), int) and row["step"] <= step:
      kept.append(line + b"\n")
    else:
      dropped += 1
  if dropped:
    _replace(path, b"".join(kept))
  return dropped


def _parse(line: bytes):
  try:
    row = json.loads(line)
  except ValueError:   # a partial last row, or bytes that are not JSON
    return None
  return row if isinstance(row, dict) else None


def _records(data: bytes):
  """(record bytes, Event) of a TFRecord file, up to the first incomplete or bad record."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  from tensorboardX.record_writer import masked_crc32c  # pylint: disable=g-import-not-at-top
  pos = 0
  while pos + 12 <= len(data):
    header = data[pos:pos + 8]
    (length,) = struct.unpack("Q", header)
    (header_crc,) = struct.unpack("I", data[pos + 8:pos + 12])
    end = pos + 12 + length + 4
    if header_crc != masked_crc32c(header) or end > len(data):
      return
    body = data[pos + 12:pos + 12 + length]
    if struct.unpack("I", data[end - 4:end])[0] != masked_crc32c(body):
      return
    event = event_pb2.Event()
    try:
      event.ParseFromString(body)
    except Exception:  # pylint: disable=broad-except
      return
    yield data[pos:end], event
    pos = end


def _truncate_events(path: str, step: int) -> int:
  """Rewrites one event file without the events after `step`; returns how many went.

  A file left with no summaries (only its header) is deleted.
  """
  with open(path, "rb") as f:
    data = f.read()
  kept, dropped, summaries, size = [], 0, 0, 0
  for record, event in _records(data):
    size += len(record)
    if event.step > step:
      dropped += 1
      continue
    kept.append(record)
    summaries += event.HasField("summary")
  if size < len(data):        # a record cut off mid-write
    dropped += 1
  if not dropped:
    return 0
  if summaries:
    _replace(path, b"".join(kept))
  else:
    os.remove(path)
  return dropped


def _replace(path: str, data: bytes) -> None:
  """Writes `path` atomically (a crash leaves the old or the new file, never half).

  The temporary name does not contain "tfevents", so no TensorBoard reader
  takes a leftover one for an event file.
  """
  tmp = os.path.join(os.path.dirname(path), ".gen_jax_rewrite.tmp")
  with open(tmp, "wb") as f:
    f.write(data)
  os.replace(tmp, path)


class MetricWriter:
  """Writes scalar dicts; a no-op on processes other than 0.

  With `resume_step` (training), records after that step are removed first
  (see `truncate`) and `self.removed` says how many; without it (evaluation,
  sampling) records are appended.
  """

  def __init__(self, workdir: str, resume_step: int | None = None):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.removed = (0, 0)
    self._tb = None
    if not self.active:
      return
    os.makedirs(workdir, exist_ok=True)
    if resume_step is not None:
      self.removed = truncate(workdir, resume_step)
    elif os.path.isfile(self.path) and os.path.getsize(self.path):
      with open(self.path, "rb+") as f:   # never append to a partial last row
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
          f.write(b"\n")
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    # Event file names carry the time in whole seconds; the microseconds keep two
    # invocations within one second from writing (and clobbering) the same file.
    self._tb = SummaryWriter(os.path.join(workdir, "tb"),
                             filename_suffix=f".{time.time_ns() // 1000 % 1_000_000:06d}")

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
  """The rows of a JSONL file; a partial or unreadable row (a killed writer) is skipped."""
  with open(path, "rb") as f:
    rows = [_parse(line) for line in f if line.strip()]
  return [r for r in rows if r is not None]
