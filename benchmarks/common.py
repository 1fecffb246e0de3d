"""What every benchmark shares: alternating rounds, the optional torch import, and
the provenance and JSON file of a result.

Contenders are timed in rounds; round r starts at contender r mod n, so no
contender always runs first, right after another's compile, or last, when the
machine may have warmed up. Each benchmark reports the median over rounds.
Timings mean something only on a quiet machine: `fields()` records the load
average at the start so a loaded run is visible in its JSON.
"""
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gen_jax import provenance  # noqa: E402  pylint: disable=g-import-not-at-top
from gen_jax.utils import host_memory  # noqa: E402  pylint: disable=g-import-not-at-top

LOAD_AT_IMPORT = os.getloadavg()
# The trainer's allocator settings, before any contender runs: gen_jax's bare
# jitted steps and PyTorch in the same process see the same allocator.
HOST_MALLOC_RETAINED = host_memory.retain_freed_memory()


def random_arrays(seed: int = 0):
  """draw(*shape) -> f32 N(0, 1) array, each call a new key folded from `seed` (distinct arrays)."""
  count = iter(range(2**31))
  return lambda *shape: jax.random.normal(jax.random.fold_in(jax.random.key(seed), next(count)),
                                          shape)


def gemm_rate(torch=None, n: int = 2048, reps: int = 5) -> dict[str, float]:
  """The machine's dense float32 matmul rate in GFLOP/s: the best of `reps` (n, n) @ (n, n)
  products through XLA (jitted jnp.dot) and, when given, torch.mm at its thread count.

  A roofline for a step dominated by matrix products: a step of F GFLOP cannot run in
  less than F / rate seconds with the same arithmetic (Winograd or FFT convolutions, or
  lower precision, would change F or the rate).
  """
  a = jax.random.normal(jax.random.key(0), (n, n))
  dot = jax.jit(lambda a, b: a @ b)
  dot(a, a).block_until_ready()

  def best(fn) -> float:
    times = []
    for _ in range(reps):
      t0 = time.perf_counter()
      fn()
      times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9
  rates = {"xla": best(lambda: dot(a, a).block_until_ready())}
  if torch is not None:
    t = torch.randn(n, n)
    t @ t
    rates["torch"] = best(lambda: t @ t)
  return rates


def compiled_flops(compiled) -> float | None:
  """XLA's cost-analysis FLOP count of a compiled function (`jit(f).lower(...).compile()`),
  or None if the backend gives none."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  flops = (cost or {}).get("flops")
  return float(flops) if flops is not None else None


def import_torch(disabled: bool):
  """(torch module or None, the reason it is absent)."""
  if disabled:
    return None, "disabled by --no-torch"
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    return None, f"not installed ({e}); `pip install -e .[bench]` adds it"
  return torch, ""


def alternating_rounds(contenders: dict[str, Callable[[], float]], rounds: int,
                       unit: str = "ms/step", fmt: str = ".3f") -> dict[str, list[float]]:
  """{name: [one timing per round]}: each contender's callable returns one timing."""
  names = list(contenders)
  per_round = {name: [] for name in names}
  for r in range(rounds):
    shift = r % len(names)
    for name in names[shift:] + names[:shift]:
      per_round[name].append(contenders[name]())
    print(f"round {r + 1}/{rounds}: "
          + ", ".join(f"{n} {per_round[n][-1]:{fmt}}" for n in names) + f" {unit}", flush=True)
  return per_round


def medians(per_round: dict[str, list[float]]) -> dict[str, float]:
  return {name: statistics.median(v) for name, v in per_round.items()}


def ratio(results: dict, num: str, den: str) -> float | None:
  """results[num] / results[den], or None when either is absent."""
  if results.get(num) is not None and results.get(den):
    return results[num] / results[den]
  return None


def fmt_ratio(value: float | None, absent: str) -> str:
  return f"{value:.2f}" if value is not None else f"n/a ({absent})"


def command_line(argv: list[str]) -> str:
  """argv as a shell command, with the repository's paths relative and a temporary
  `--json` target (run_all.py collects reports through one) left out."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
  tmp = tempfile.gettempdir() + os.sep
  out, skip = [], False
  for i, a in enumerate(argv):
    if skip:
      skip = False
      continue
    if a == "--json" and i + 1 < len(argv) and argv[i + 1].startswith(tmp):
      skip = True
      continue
    out.append(a[len(repo):] if a.startswith(repo) else a)
  return shlex.join(["python"] + out)


def fields(benchmark: str, **extra) -> dict:
  """The provenance of a result: what, when, which command, commit and hardware."""
  devices = jax.devices()
  return {
      "benchmark": benchmark,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": command_line(sys.argv),
      "commit": provenance.git_commit(),
      "hardware": provenance.hardware(),
      "cpu_model": provenance.cpu_model(),
      "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind,
      "device_count": len(devices),
      "cpu_count": os.cpu_count(),
      "load_average_at_start": [round(x, 2) for x in LOAD_AT_IMPORT],
      "jax_version": jax.__version__,
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "host_malloc_retained": HOST_MALLOC_RETAINED,
      **extra,
  }


def run_script(script: str, args: list[str], env: dict | None = None,
               capture: bool = False) -> tuple[dict | None, str]:
  """Runs benchmarks/<script> with args in its own process and returns (its JSON report,
  "") or (None, why it has none); the report goes through a temporary `--json` file."""
  here = os.path.dirname(os.path.abspath(__file__))
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "report.json")
    proc = subprocess.run([sys.executable, os.path.join(here, script), *args, "--json", out],
                          cwd=os.path.dirname(here), env=env, capture_output=capture, text=True)
    if proc.returncode or not os.path.isfile(out):
      tail = ((proc.stderr or proc.stdout or "").strip().splitlines() or [""])[-1][:200]
      return None, f"exit status {proc.returncode}" + (f": {tail}" if tail else "")
    with open(out) as f:
      return json.load(f), ""


def write_json(path: str | None, report: dict) -> None:
  """Writes `report` to `path` (when given) as indented JSON."""
  if not path:
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")
  print(f"wrote {path}")
