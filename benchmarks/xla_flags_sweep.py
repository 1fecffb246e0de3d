"""One benchmark under several XLA:CPU option sets, each in its own process.

  python benchmarks/xla_flags_sweep.py dcgan [--sets default,ynn_conv] [--json FILE]
  python benchmarks/xla_flags_sweep.py vae

XLA reads XLA_FLAGS once per process, so every option set runs the benchmark
script (with --no-torch: the reference does not change with XLA's options) in
a fresh process and the table compares its contenders' ms/step across sets.
The option sets are XLA:CPU's library back ends (oneDNN, XNNPACK, YNNPACK and
their experimental fusion types) and fast math; each set's value is what
XLA_FLAGS was. Run it alone: timings on a loaded machine mean nothing.
"""
import argparse
import json
import os

import common  # benchmarks/common.py

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> XLA_FLAGS
SETS = {
    "default": "",
    "no_xnnpack": "--xla_cpu_use_xnnpack=false",
    "onednn": "--xla_cpu_use_onednn=true",
    "onednn_custom_call": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
    "onednn_fusion": "--xla_cpu_experimental_onednn_fusion_type=dot,eltwise,reduce",
    "xnn_fusion": "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce",
    "xnn_graph": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "ynn_conv": "--xla_cpu_experimental_ynn_fusion_type=individual_dot,individual_convolution",
    "ynn_all": ("--xla_cpu_experimental_ynn_fusion_type="
                "dot,eltwise,reduce,individual_dot,individual_convolution"),
    "fast_math": "--xla_cpu_enable_fast_math=true",
}

# benchmark -> (script, arguments)
BENCHMARKS = {
    "vae": ("bench_vae.py", ["--steps", "200", "--rounds", "3", "--warmup", "20"]),
    "dcgan": ("bench_dcgan.py", ["--steps", "3", "--rounds", "3", "--warmup", "2",
                                 "--only", "jax_subpixel,jax_subpixel_s2d,jax_matmul"]),
}


def run_set(bench: str, flags: str, extra: list[str]) -> dict:
  """The benchmark's JSON report under XLA_FLAGS=flags (or {"error": ...})."""
  script, args = BENCHMARKS[bench]
  report, error = common.run_script(script, ["--no-torch", *args, *extra],
                                    env={**os.environ, "XLA_FLAGS": flags}, capture=True)
  return report if report is not None else {"error": error}


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("benchmark", choices=sorted(BENCHMARKS))
  parser.add_argument("--sets", default=",".join(SETS), help="comma-separated option sets")
  parser.add_argument("--json", metavar="PATH", help="also write every set's report here")
  args, extra = parser.parse_known_args(argv)
  names = [n for n in args.sets.split(",") if n]
  unknown = sorted(set(names) - set(SETS))
  if unknown:
    parser.error(f"unknown option sets {unknown}; choices: {', '.join(SETS)}")
  reports = {}
  for name in names:
    print(f"[{name}] XLA_FLAGS={SETS[name]!r}", flush=True)
    reports[name] = run_set(args.benchmark, SETS[name], extra)
    r = reports[name]
    print("  " + (r["error"] if "error" in r else json.dumps(
        {k: round(v, 3) for k, v in r["ms_per_step"].items()})), flush=True)
  contenders = sorted({c for r in reports.values() for c in r.get("ms_per_step", {})})
  print(f"\nms/step by XLA:CPU option set ({args.benchmark})\n")
  print("| option set | " + " | ".join(contenders) + " |")
  print("|---|" + "---:|" * len(contenders))
  for name, r in reports.items():
    cells = ([f"{r['ms_per_step'][c]:.2f}" if c in r.get("ms_per_step", {}) else "n/a"
              for c in contenders] if "error" not in r else [r["error"]] + [""] * (len(contenders) - 1))
    print(f"| {name} | " + " | ".join(cells) + " |")
  report = common.fields(f"xla_flags_sweep_{args.benchmark}", sets=SETS, reports=reports)
  common.write_json(args.json, report)
  return report


if __name__ == "__main__":
  main()
