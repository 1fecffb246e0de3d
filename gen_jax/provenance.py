"""Where a number came from: commit, command, hardware and wall time of each run.

Every invocation that trains, evaluates or samples appends one record to
`<workdir>/run_info.jsonl` (a resumed run adds a record; `mode` says which
kind), so every reported result can name the code, command, hardware and
total wall time that produced it. Evaluation and sampling records name the
checkpoint step they read as both `start_step` and `end_step`.
"""
import json
import os
import platform
import subprocess
import sys
import time

import jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def changed_files() -> list[str]:
  """Tracked files with local changes (what '+dirty' means), e.g. ['README.md']."""
  out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                       capture_output=True, text=True, check=True).stdout
  return sorted(line[3:] for line in out.splitlines() if line.strip())


def git_state() -> dict:
  """{"commit": short commit, '+dirty' if tracked files changed, and then "changed_files"}."""
  try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.strip()
    changed = changed_files()
  except (OSError, subprocess.CalledProcessError):
    return {"commit": "unknown"}
  if not changed:
    return {"commit": commit}
  return {"commit": commit + "+dirty", "changed_files": changed}


def git_commit() -> str:
  """Short commit of the gen_jax checkout, '+dirty' if it has local changes."""
  return git_state()["commit"]


def cpu_cores() -> str:
  """'2 cores', or '1 of 2 cores' when the process is pinned (taskset) to fewer."""
  total = os.cpu_count() or 0
  try:
    usable = len(os.sched_getaffinity(0))
  except AttributeError:            # not on Linux
    usable = total
  return f"{total} cores" if usable >= total else f"{usable} of {total} cores"


def cpu_model() -> str:
  """The host CPU as /proc/cpuinfo names it, with its widest vector units.

  e.g. 'Intel(R) Xeon(R) Processor (AVX-512, AMX)'; platform.processor() off
  Linux. Two machines with the same core count can differ twofold in speed:
  benchmarks record this beside `hardware()`.
  """
  try:
    with open("/proc/cpuinfo") as f:
      info = f.read()
  except OSError:
    return platform.processor() or "unknown"
  name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
               if line.startswith("model name")), platform.processor() or "unknown")
  flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines()
                    if line.startswith("flags")), []))
  units = [label for label, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"),
                                     ("AMX", "amx_tile")) if flag in flags]
  if "AVX-512" in units:
    units.remove("AVX2")
  return f"{name} ({', '.join(units)})" if units else name


def hardware() -> str:
  """e.g. '1 x cpu (2 cores)', '1 x cpu (1 of 2 cores)' or '8 x NVIDIA H100 80GB HBM3'."""
  devices = jax.devices()
  kind = devices[0].device_kind
  if devices[0].platform == "cpu":
    kind = f"cpu ({cpu_cores()})"
  procs = f", {jax.process_count()} processes" if jax.process_count() > 1 else ""
  return f"{len(devices)} x {kind}{procs}"


class Recorder:
  """Appends {mode, commit, command, hardware, steps, wall_s} for one invocation."""

  def __init__(self, workdir: str, start_step: int, mode: str = "train"):
    self.path = os.path.join(workdir, "run_info.jsonl")
    self.start_step = start_step
    self.t0 = time.time()
    self.base = {
        "mode": mode,
        **git_state(),
        "command": " ".join(["python -m gen_jax.main"] + sys.argv[1:])
                   if sys.argv and sys.argv[0].endswith("main.py") else " ".join(sys.argv),
        "hardware": hardware(),
        "jax": jax.__version__, "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.t0)),
    }

  def finish(self, end_step: int, train_seconds: float, train_examples: int,
             interrupted: bool = False, **extra) -> None:
    """Appends the record; `extra` adds keys (e.g. the config keys a resume changed)."""
    if jax.process_index() != 0:
      return
    record = dict(self.base, start_step=self.start_step, end_step=end_step,
                  train_examples=train_examples,
                  train_s=round(train_seconds, 1), wall_s=round(time.time() - self.t0, 1),
                  **extra)
    if interrupted:
      record["interrupted"] = True
    line = json.dumps(record) + "\n"
    if os.path.isfile(self.path) and os.path.getsize(self.path):
      with open(self.path, "rb") as f:   # never append to a row a killed process cut off
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
          line = "\n" + line
    with open(self.path, "a") as f:
      f.write(line)
