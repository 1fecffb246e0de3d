"""Every benchmark in one table: gen_jax against the reference implementation of each family.

  python benchmarks/run_all.py [--json FILE] [--quick] [--only vae,dcgan] [--readme README.md]

Runs each benchmark script in its own process, one after another (each
alternates its contenders within rounds and reports medians; see
benchmarks/common.py), then writes one Markdown table and one JSON file
(default benchmarks/results/<hardware>_<cpu model>.json) holding every benchmark's full
report, the table's rows, and the hardware, commit and date. References:
PyTorch eager (VAE, DCGAN, GPT train steps), hmmlearn (HMM), scikit-learn
(GMM EM), pgmpy (Bayesian-network queries) and, for autoregressive sampling,
the model's own naive re-forward sampler. A reference that is not installed
(torch, hmmlearn, pgmpy) or data that is absent (the bnlearn networks, read
from BNLEARN_DIR) leaves its rows as "n/a" with the reason.

Timings mean something only on a quiet machine: run it alone (no training
runs, no tests). `--quick` shortens every benchmark (fewer steps and rounds)
to check the harness, not to measure.
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"

# name -> (script, arguments, --quick arguments)
BENCHMARKS = {
    "vae": ("bench_vae.py", [], ["--steps", "50", "--rounds", "2", "--warmup", "5"]),
    "dcgan": ("bench_dcgan.py", [], ["--steps", "1", "--rounds", "2", "--warmup", "1"]),
    "gpt": ("bench_gpt.py", [], ["--steps", "10", "--rounds", "2", "--warmup", "2",
                                  "--decode-calls", "1"]),
    "hmm": ("bench_hmm.py", [], ["--rounds", "2", "--reps", "2"]),
    "gmm": ("bench_gmm.py", [], ["--rounds", "2", "--iters", "5"]),
    "bn": ("bench_bn.py", ["--pgmpy-queries", "20"],
           ["--pgmpy-queries", "3", "--rounds", "2", "--networks", "asia,child"]),
    "ar_sampling": ("bench_ar_sampling.py", [], ["--arch", "nade,made"]),
}


def _row(bench, case, ours, reference, ref_ms, target=None, unit="ms", note=""):
  ratio = ref_ms / ours if ours and ref_ms else None
  return dict(benchmark=bench, case=case, gen_jax=ours, reference=reference,
              reference_value=ref_ms, ratio=ratio, target=target, unit=unit,
              met=None if target is None or ratio is None else ratio >= target, note=note)


def _floor_rows(bench: str, ms: dict) -> list[dict]:
  """The `matmul_floor` contender's row, if the report has one."""
  if "matmul_floor" not in ms:
    return []
  return [_row(bench, "the step's matrix products alone (a floor, not a step)",
               ms["matmul_floor"], "PyTorch eager", ms.get("torch_eager"), None, "ms/step",
               note="float32 XLA matmuls; the rest of a step adds to it")]


def rows_of(name: str, r: dict) -> list[dict]:
  """The table rows of one benchmark's JSON report (ratio = reference / gen_jax)."""
  if name == "vae":
    ms = r["ms_per_step"]
    k = r.get("trainer_steps_per_call", 1)
    k1 = ([_row("vae", "same, trainer at 1 step per call", ms["trainer_k1"], "PyTorch eager",
                ms.get("torch_eager"), None, "ms/step")] if "trainer_k1" in ms else [])
    return [_row("vae", f"MLP VAE 784-400-20 b128, trainer step ({k} per call"
                 + (", the experiment's default)" if k > 1 else ")"), ms["trainer"],
                 "PyTorch eager", ms.get("torch_eager"), 2.0, "ms/step"), *k1,
            _row("vae", "same, bare jitted step", ms["jax_bare"], "PyTorch eager",
                 ms.get("torch_eager"), None, "ms/step"), *_floor_rows("vae", ms)]
  if name == "dcgan":
    ms = r["ms_per_step"]
    ours = {k: v for k, v in ms.items() if k != "torch_eager"}
    best = min(ours, key=ours.get)
    frac, need = r.get("fraction_of_matmul_rate", {}), r.get("fraction_needed_for_target", {})
    note = ""
    if frac.get(best) and frac.get("torch_eager") and need.get(best):
      note = (f"{frac[best]:.0%} of the measured float32 matmul rate, PyTorch "
              f"{frac['torch_eager']:.0%}; {r.get('target', 1.2)}x would need {need[best]:.0%}")
    return [_row("dcgan", f"DCGAN 64x64 b16, fastest formulation ({best})", ours[best],
                 "PyTorch eager", ms.get("torch_eager"), 1.2, "ms/step", note=note)]
  if name == "gpt":
    ms = {row["contender"]: row["value"] for row in r["rows"]}
    k = r.get("trainer_steps_per_call", 1)
    out = [_row("gpt", f"char GPT, trainer step ({r['dtype']}, {k} per call"
                + (", the experiment's default)" if k > 1 else ")"), ms["trainer"],
                "PyTorch eager", ms.get("torch_eager"), 1.5, "ms/step")]
    for key, case in (("trainer_k1", "same, 1 step per call"),
                      ("trainer_scan10", "same, 10 steps per call in a lax.scan")):
      if key in ms:
        out.append(_row("gpt", case, ms[key], "PyTorch eager", ms.get("torch_eager"), None,
                        "ms/step"))
    out += _floor_rows("gpt", ms)
    speed = r.get("decode_speedup_kv_over_full", {})
    for b, s in speed.items():
      out.append(_row("gpt", f"decode batch {b}: KV cache vs full forward",
                      ms[f"kv_cache (batch {b})"], "full forward", ms[f"full_forward (batch {b})"],
                      None, "tokens/s", note=f"{s:.2f}x more tokens/s with the cache"))
      out[-1]["ratio"] = s   # tokens/s: higher is faster, so the ratio is ours / reference
    return out
  if name == "hmm":
    ms = r["ms_per_call"]
    ks = sorted({int(k.split("/")[0][2:]) for k in ms})
    return [_row("hmm", f"K={k}, {op}", ms[f"K={k}/gen_jax_f32/{op}"], "hmmlearn",
                 ms.get(f"K={k}/hmmlearn/{op}"), None, "ms/call")
            for k in ks for op in ("fb", "bw5")]
  if name == "gmm":
    return [_row("gmm", f"{c['covariance']} K={c['k']}, EM iteration", c["ms_per_iter"]["gen_jax"],
                 "scikit-learn", c["ms_per_iter"]["sklearn"], None, "ms/iter")
            for c in r["cases"]]
  if name == "bn":
    out = []
    for c in r["results"]:
      per_query = c["batched_ms_per_call"] / r["batch"]
      out.append(_row("bn", f"{c['network']}, {c['kind']}: {c['query']}", per_query, "pgmpy",
                      c.get("pgmpy_ms"), None, "ms/query",
                      note=f"batched over {r['batch']} evidence sets"))
    return out
  if name == "ar_sampling":
    return [_row("ar_sampling", f"{arch} sampling, cached loop", v["cached_ms_per_image"],
                 "naive re-forward", v["naive_ms_per_image"], None, "ms/image")
            for arch, v in r["results"].items()]
  raise KeyError(name)


def _fmt(v, unit="") -> str:
  if v is None:
    return "n/a"
  return f"{v:,.4g}" + (f" {unit}" if unit else "")


def table(rows: list[dict], meta: dict) -> str:
  cpu = f", {meta['cpu_model']}" if meta.get("cpu_model") else ""
  lines = [f"Measured on {meta['hardware']}{cpu} at commit {meta['commit']}, {meta['date']} "
           f"(load average at start {meta['load']}); `{meta['command']}`.", "",
           "| benchmark | case | gen_jax | reference | reference / gen_jax | target | met |",
           "|---|---|---:|---|---:|---:|---|"]
  for r in rows:
    ref = f"{r['reference']}: {_fmt(r['reference_value'], r['unit'])}"
    ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}x"
    target = "" if r["target"] is None else f"≥ {r['target']}x"
    met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
    case = r["case"] + (f" ({r['note']})" if r["note"] else "")
    cells = [r["benchmark"], case, _fmt(r["gen_jax"], r["unit"]), ref, ratio, target, met]
    # A literal '|' (as in P(a | b)) would end a Markdown cell.
    lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
  return "\n".join(lines)


def _slug(text: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def default_json(hardware: str, cpu_model: str | None) -> str:
  """benchmarks/results/<hardware>[_<cpu model>].json: two 2-core machines with
  different CPUs get two files (their speeds differ up to twofold)."""
  return os.path.join(HERE, "results", _slug(f"{hardware} {cpu_model or ''}") + ".json")


def _table_from_json(path: str, readme: str = "") -> int:
  """Rebuilds the table (and README block) from a saved run's reports, with today's
  `rows_of`: no benchmark runs."""
  with open(path) as f:
    saved = json.load(f)
  rows = [row for name, rep in saved["reports"].items() for row in rows_of(name, rep)]
  info = {k: saved.get(k) for k in ("hardware", "cpu_model", "commit", "date", "command")}
  info["load"] = saved.get("load_average_at_start")
  _show(table(rows, info), saved.get("failed", {}), readme)
  return 0


def _show(text: str, failed: dict, readme: str) -> None:
  """Prints the table (with the benchmarks that failed) and writes it into `readme`'s block."""
  if failed:
    text += "\n\nNot run: " + "; ".join(f"{k} ({v})" for k, v in failed.items())
  print("\n" + text)
  if readme:
    from gen_jax import report  # pylint: disable=g-import-not-at-top
    report.replace_block(readme, text, START, END)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--only", default=",".join(BENCHMARKS),
                      help="comma-separated benchmarks: " + ",".join(BENCHMARKS))
  parser.add_argument("--quick", action="store_true", help="short runs: checks the harness only")
  parser.add_argument("--json", default="", help="default benchmarks/results/<hardware>_<cpu model>.json")
  parser.add_argument("--readme", default="", help=f"replace its {START} ... {END} block")
  parser.add_argument("--from-json", default="",
                      help="run nothing: rebuild the table from a JSON this script wrote")
  args = parser.parse_args(argv)
  if args.from_json:
    return _table_from_json(args.from_json, args.readme)
  names = [n for n in args.only.split(",") if n]
  unknown = [n for n in names if n not in BENCHMARKS]
  if unknown:
    parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
  import common  # pylint: disable=g-import-not-at-top
  meta = common.fields("all")
  reports, rows, failed = {}, [], {}
  for i, name in enumerate(names):
    script, extra, quick = BENCHMARKS[name]
    args_i = extra + (quick if args.quick else [])
    print(f"[{i + 1}/{len(names)}] {script} {' '.join(args_i)}", flush=True)
    report, error = common.run_script(script, args_i)
    if report is None:
      failed[name] = error
      print(f"{name}: failed ({error}); its rows are left out", flush=True)
      continue
    reports[name] = report
    rows += rows_of(name, report)
  hardware = meta["hardware"]
  info = dict(hardware=hardware, cpu_model=meta.get("cpu_model"), commit=meta["commit"],
              date=meta["date"], load=meta["load_average_at_start"], command=meta["command"])
  path = args.json or default_json(hardware, meta.get("cpu_model"))
  common.write_json(path, dict(meta, quick=args.quick, rows=rows, failed=failed,
                               reports=reports))
  _show(table(rows, info), failed, args.readme)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
