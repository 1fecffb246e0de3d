"""Results tables generated from run workdirs, never typed by hand.

  python -m gen_jax.report runs/vae_mnist_cpu runs/iwae50_cpu [--readme README.md]

For each workdir it reads the latest `eval/step_*.json` (values and units),
`run_info.jsonl` (commit, command, hardware, wall time of every invocation,
summed over resumes) and `config.json` (dataset, variant, schedule, and the
`reference` number the experiment reproduces). With --readme it replaces the
block between `<!-- results:start -->` and `<!-- results:end -->`.
"""
import argparse
import glob
import json
import math
import os
import re
import shlex
import sys

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _hours(seconds: float) -> str:
  return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _value(value: float, sem: float | None) -> str:
  """Enough decimals (2 to 4) to show the standard error's first significant digit."""
  digits = 2
  if sem is not None and sem > 0:
    digits = min(max(math.ceil(-math.log10(sem)), 2), 4)
  return f"{value:.{digits}f}" + (f" ± {sem:.{digits}f}" if sem is not None else "")


def _reference_from_command(command: str) -> dict:
  """The experiment file's `reference`, for runs whose config.json predates the key."""
  args = shlex.split(command)
  if "--config" not in args:
    return {}
  from gen_jax import config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.load_config(args[args.index("--config") + 1]).reference.to_dict()


def _schedule(steps: int, batch: int, epochs: float, config: dict, last: dict) -> str:
  """'N steps × batch B (E epochs)', or for whole-split EM 'N steps (EM iterations ...)'."""
  if batch == 0:
    text = (f"{steps:,} steps (EM iterations over the whole split of "
            f"{last.get('train_examples', 0):,})")
  else:
    text = f"{steps:,} steps × batch {batch} ({epochs:.1f} epochs)"
  if "converged_at" in last:
    return text + f"; converged at step {last['converged_at']:,} (em.tol {config['em']['tol']:g})"
  if steps < config["total_steps"]:
    text += f"; stopped at step {steps:,} of {config['total_steps']:,}"
  return text


def row(workdir: str) -> dict:
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  evals = sorted(glob.glob(os.path.join(workdir, "eval", "step_*.json")))
  if not evals:
    raise SystemExit(f"{workdir}: no eval/step_*.json; run --mode eval first")
  with open(evals[-1]) as f:
    ev = json.load(f)
  with open(os.path.join(workdir, "run_info.jsonl")) as f:
    info = [json.loads(line) for line in f if line.strip()]
  ref = config.get("reference") or _reference_from_command(info[0]["command"])
  metric = ref.get("metric") or next(k for k, v in ev["results"].items()
                                     if isinstance(v, float) and not k.endswith("_sem"))
  value = ev["results"][metric]
  sem = ev["results"].get(metric + "_sem")
  d = config["data"]
  # The schedule comes from training invocations; evaluation and sampling records
  # (mode "eval" / "sample") add their wall time, commits and hardware only.
  trained = [r for r in info if r.get("mode", "train") == "train"] or info
  steps = trained[-1]["end_step"]
  epochs = steps * d["batch_size"] / trained[-1].get("train_examples", float("nan"))
  return {
      "run": os.path.basename(os.path.normpath(workdir)),
      "data": f"{d['name']} ({d['variant']})",
      "metric": f"{metric} [{ev['units'][metric].split(';')[0]}]",
      "value": _value(value, sem),
      "reference": (f"{ref['value']:.4g} ({ref['source']})" if ref.get("value") else "–"),
      "also": "; ".join(f"{k} {v:.2f} [{ev['units'][k].split(';')[0]}]"
                        for k, v in ev["results"].items()
                        if isinstance(v, float) and k != metric and not k.endswith("_sem")),
      "schedule": _schedule(steps, d["batch_size"], epochs, config, trained[-1]),
      "hardware": "; ".join(_distinct(r["hardware"] for r in info)),
      "wall": _hours(sum(r["wall_s"] for r in info)),
      "commit": ", ".join(_distinct(r["commit"] for r in info)),
      "command": info[0]["command"],
  }


def _distinct(values) -> list:
  """Values in first-seen order without repeats (a resumed run may span commits)."""
  return list(dict.fromkeys(values))


COLUMNS = [("run", "Run"), ("data", "Data (variant)"), ("metric", "Metric"),
           ("value", "Value"), ("reference", "Paper"), ("also", "Also measured"),
           ("schedule", "Schedule"),
           ("hardware", "Hardware"), ("wall", "Wall time"), ("commit", "Commit")]


def _cell(value) -> str:
  """A Markdown table cell: a literal '|' (as in KL(p || q)) would end the cell."""
  return str(value).replace("|", "\\|")


def table(rows) -> str:
  lines = ["| " + " | ".join(t for _, t in COLUMNS) + " |",
           "|" + "---|" * len(COLUMNS)]
  lines += ["| " + " | ".join(_cell(r[k]) for k, _ in COLUMNS) + " |" for r in rows]
  lines += ["", "Commands:", ""] + [f"- `{r['run']}`: `{r['command']}`" for r in rows]
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("workdirs", nargs="+")
  parser.add_argument("--readme", default="")
  args = parser.parse_args(argv)
  text = table([row(w) for w in args.workdirs])
  if not args.readme:
    print(text)
    return 0
  with open(args.readme) as f:
    readme = f.read()
  if START not in readme or END not in readme:
    raise SystemExit(f"{args.readme} has no {START} ... {END} block")
  readme = re.sub(re.escape(START) + ".*?" + re.escape(END),
                  lambda _: f"{START}\n{text}\n{END}", readme, flags=re.S)
  with open(args.readme, "w") as f:
    f.write(readme)
  return 0


if __name__ == "__main__":
  sys.exit(main())
