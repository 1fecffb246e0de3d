"""Results tables generated from run workdirs, never typed by hand.

  python -m gen_jax.report runs/vae_mnist_cpu runs/iwae50_cpu [--readme README.md]

For each workdir it reads the latest `eval/step_*.json` (values and units),
`run_info.jsonl` (commit, command, hardware, wall time of every invocation,
summed over resumes) and `config.json` (dataset, variant, schedule, and the
`reference` number the experiment reproduces). With --readme it replaces the
block between `<!-- results:start -->` and `<!-- results:end -->`.

Rows are grouped by task: every binarized variant of MNIST in one table (each
row names its variant), every other dataset and variant in its own. Within a
table rows are ordered by variant, then estimator (exact, bound, estimate),
so numbers of different kinds are never ranked together. Each row shows its
headline metric (`reference.metric`) and at most two secondary results
(`reference.also`, else the first two the evaluators returned).
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


def _short(unit: str) -> str:
  """A unit string's first clause or two, for a table cell (the full text is in eval/)."""
  parts = unit.split(";")[0].split(", ")
  text = ", ".join(parts[:2])
  if len(text) > 80:
    text = parts[0]
  return text + (", ..." if len(parts) > len(text.split(", ")) else "")


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


def _experiment_reference(command: str) -> dict:
  """The experiment's current `reference`, or {} when its file cannot be loaded."""
  try:
    return _reference_from_command(command)
  except Exception:  # pylint: disable=broad-except
    return {}


# Keywords of a headline unit string -> what kind of number it is, first match wins.
_ESTIMATORS = (("lower bound", "bound (AIS log Z)"), ("upper bound", "bound"),
               ("bound", "bound"), ("AIS", "AIS estimate"), ("IWAE", "IWAE estimate"),
               ("exact", "exact"))


def _estimator(ref: dict, unit: str, variant: str, dequantization: str = "uniform") -> str:
  """Exact, bound or estimate: `reference.estimator`, else read from the units."""
  if ref.get("estimator"):
    return ref["estimator"]
  if variant.startswith("dequantized"):   # continuous density of dequantized pixels
    # Under a learned q(u | k) the bound is E_q[log p(k + u) - log q(u | k)].
    return ("bound (variational dequantization)" if dequantization == "variational"
            else "bound (dequantized)")
  return next((name for key, name in _ESTIMATORS if re.search(rf"\b{key}\b", unit)), "–")


def _is_binarized_mnist(d: dict) -> bool:
  return d["name"] in ("mnist", "binarized_mnist") and d["variant"].startswith("binarized")


def group(r: dict) -> str:
  """The table a row belongs to."""
  if r.get("application"):
    return "Applications"
  if r.get("binarized_mnist"):
    return "Binarized MNIST"
  return "2-D toy densities" if r.get("data", "").endswith("(continuous)") else r.get("data", "")


_ESTIMATOR_ORDER = ("exact", "bound", "AIS", "IWAE")


def _order(r: dict) -> tuple:
  kind = next((i for i, k in enumerate(_ESTIMATOR_ORDER)
               if r.get("estimator", "").startswith(k)), len(_ESTIMATOR_ORDER))
  return (r.get("variant", ""), r.get("data", ""), kind, r.get("run", ""))


def row(workdir: str) -> dict:
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  evals = sorted(glob.glob(os.path.join(workdir, "eval", "step_*.json")))
  if not evals and os.path.isfile(os.path.join(workdir, "eval", "application.json")):
    return _application_row(workdir, config)
  if not evals:
    raise SystemExit(f"{workdir}: no eval/step_*.json; run --mode eval first")
  with open(evals[-1]) as f:
    ev = json.load(f)
  with open(os.path.join(workdir, "run_info.jsonl")) as f:
    info = [json.loads(line) for line in f if line.strip()]
  ref = config.get("reference") or _reference_from_command(info[0]["command"])
  if any(k not in ref for k in ("also", "estimator", "epochs")):   # older records
    current = _experiment_reference(info[0]["command"])
    if current.get("metric") == ref.get("metric") or not ref.get("metric"):
      ref = {"also": current.get("also", ()), "estimator": current.get("estimator", ""),
             "epochs": current.get("epochs", 0.0), **ref}
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
  results = ev["results"]
  also = [k for k in ref.get("also") or () if k in results] or [
      k for k, v in results.items()
      if isinstance(v, float) and k != metric and not k.endswith(("_sem", "_se"))][:2]
  return {
      "run": os.path.basename(os.path.normpath(workdir)),
      "data": f"{d['name']} ({d['variant']})",
      "variant": d["variant"],
      "binarized_mnist": _is_binarized_mnist(d),
      "metric": f"{metric} [{_short(ev['units'][metric])}]",
      "estimator": _estimator(ref, ev["units"][metric], d["variant"],
                              config.get("model", {}).get("dequantization", "uniform")),
      "value": _value(value, sem),
      "reference": (f"{ref['value']:.4g} ({ref['source']})" if ref.get("value") else "–"),
      "also": "; ".join(
          f"{k} {_value(results[k], results.get(k + '_sem', results.get(k + '_se')))} "
          f"[{_short(ev['units'][k])}]" for k in also[:2]),
      "schedule": _schedule(steps, d["batch_size"], epochs, config, trained[-1]),
      "paper_schedule": _paper_schedule(epochs, ref),
      "hardware": "; ".join(_distinct(r["hardware"] for r in info)),
      "wall": _hours(sum(r["wall_s"] for r in info)),
      "commit": ", ".join(_distinct(r["commit"] for r in info)),
      "command": info[0]["command"],
  }


def _application_row(workdir: str, config: dict) -> dict:
  """A row for an application run (gen_jax.applications): its headline and sub-runs."""
  with open(os.path.join(workdir, "eval", "application.json")) as f:
    ev = json.load(f)
  with open(os.path.join(workdir, "run_info.jsonl")) as f:
    info = [json.loads(line) for line in f if line.strip()]
  ref, results, units = config.get("reference", {}), ev["results"], ev["units"]
  metric = ref.get("metric") or next(k for k, v in results.items() if isinstance(v, float))

  def spread(k):
    return next((results[k + s] for s in ("_sem", "_se", "_std") if k + s in results), None)
  also = [k for k in ref.get("also") or () if k in results][:2]
  subruns = glob.glob(os.path.join(workdir, "**", "checkpoints"), recursive=True)
  return {
      "run": os.path.basename(os.path.normpath(workdir)),
      "application": True,
      "data": config["application"]["type"],
      "variant": "",
      "metric": f"{metric} [{_short(units[metric])}]",
      "estimator": ref.get("estimator") or "–",
      "value": _value(results[metric], spread(metric)),
      "reference": (f"{ref['value']:.4g} ({ref['source']})" if ref.get("value") else "–"),
      "also": "; ".join(f"{k} {_value(results[k], spread(k))} [{_short(units[k])}]"
                        for k in also),
      "schedule": (f"{len(subruns)} sub-runs; " if subruns else "") +
                  "each sub-run's schedule: see the experiment header",
      "paper_schedule": "–",
      "hardware": "; ".join(_distinct(r["hardware"] for r in info)),
      "wall": _hours(sum(r["wall_s"] for r in info)),
      "commit": ", ".join(_distinct(r["commit"] for r in info)),
      "command": info[0]["command"],
  }


def _paper_schedule(epochs: float, ref: dict) -> str:
  """The source's schedule beside the run's: 'E epochs', marked when the run is short of it."""
  if not ref.get("value"):
    return "–"
  paper = float(ref.get("epochs") or 0.0)
  if not paper:
    return "not stated"
  text = f"{paper:,.0f} epochs"
  # Whole-split EM and text streams have no epochs to compare (epochs is NaN).
  if epochs == epochs and epochs < 0.95 * paper:
    text += f"; **short of the paper's schedule** ({100 * epochs / paper:.1f}%)"
  return text


def _distinct(values) -> list:
  """Values in first-seen order without repeats (a resumed run may span commits)."""
  return list(dict.fromkeys(values))


COLUMNS = [("run", "Run"), ("data", "Data (variant)"), ("metric", "Metric"),
           ("estimator", "Estimator"), ("value", "Value"), ("reference", "Paper"),
           ("also", "Also measured (at most two)"),
           ("schedule", "Schedule"), ("paper_schedule", "Paper's schedule"),
           ("hardware", "Hardware"), ("wall", "Wall time"), ("commit", "Commit")]


def _cell(value) -> str:
  """A Markdown table cell: a literal '|' (as in KL(p || q)) would end the cell."""
  return str(value).replace("|", "\\|")


def _one_table(rows) -> list:
  lines = ["| " + " | ".join(t for _, t in COLUMNS) + " |",
           "|" + "---|" * len(COLUMNS)]
  return lines + ["| " + " | ".join(_cell(r.get(k, "")) for k, _ in COLUMNS) + " |"
                  for r in rows]


def table(rows) -> str:
  """One Markdown table per group (see the module docstring), then the commands."""
  groups = {}
  for r in rows:
    groups.setdefault(group(r), []).append(r)
  names = sorted(groups, key=lambda g: (g != "Binarized MNIST", g))
  lines, ordered = [], []
  for name in names:
    members = sorted(groups[name], key=_order)
    lines += [f"**{name}**", ""] + _one_table(members) + [""]
    ordered += members
  lines += ["Commands:", ""] + [f"- `{r['run']}`: `{r['command']}`" for r in ordered]
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
  replace_block(args.readme, text, START, END)
  return 0


def replace_block(path: str, text: str, start: str = START, end: str = END) -> None:
  """Replaces what lies between the `start` and `end` markers of the file at `path`."""
  with open(path) as f:
    readme = f.read()
  if start not in readme or end not in readme:
    raise SystemExit(f"{path} has no {start} ... {end} block")
  readme = re.sub(re.escape(start) + ".*?" + re.escape(end),
                  lambda _: f"{start}\n{text}\n{end}", readme, flags=re.S)
  with open(path, "w") as f:
    f.write(readme)


if __name__ == "__main__":
  sys.exit(main())
