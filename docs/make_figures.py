"""Builds the committed figures in docs/ from run workdirs (never drawn by hand).

  python docs/make_figures.py flows_toy2d runs/nsf_moons runs/nsf_8gaussians ...

`flows_toy2d`: one column per toy-density run: the training data (20,000 of
the generated points), the model density heat map and 20,000 model samples,
read from each workdir's samples/ folder.

`bpd_curves`: test bits/dim (with its standard error) and the training loss
against epochs, one line per run, from each workdir's metrics.jsonl (the
evaluations `eval_every_steps` wrote), with the paper's number dashed and the
CPU schedule's target dotted.

`iwae_curve`: the test log-likelihood estimate log p^(x) (IWAE estimator, the
evaluator's k) with its standard error against epochs, one point per
evaluation the workdir's eval/ folder holds (the end of training, and any
`--mode eval --step N` of a kept checkpoint), with how many test images each
used; the paper's number dashed.
"""
import glob
import json
import os
import re
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gen_jax.data import toy2d  # noqa: E402  pylint: disable=g-import-not-at-top
from gen_jax.utils import images  # noqa: E402  pylint: disable=g-import-not-at-top

DOCS = os.path.dirname(os.path.abspath(__file__))


def _latest(workdir: str, prefix: str) -> np.ndarray:
  path = sorted(glob.glob(os.path.join(workdir, "samples", f"{prefix}_*.png")))[-1]
  return np.asarray(Image.open(path))


def flows_toy2d(workdirs: list[str]) -> str:
  cols, data_row, dens_row, samp_row = [], [], [], []
  for w in workdirs:
    with open(os.path.join(w, "config.json")) as f:
      config = json.load(f)
    name, extent = config["data"]["name"], config["plot_extent"]
    with open(sorted(glob.glob(os.path.join(w, "eval", "step_*.json")))[-1]) as f:
      nll = json.load(f)["results"]["test_ll/nll"]
    cols.append(f"{name}: {nll:.3f} nats")
    data_row.append(images.points_image(toy2d.generate(name, "train")[:20000], extent))
    dens_row.append(_latest(w, "density"))
    samp_row.append(_latest(w, "samples"))
  arch = config["model"]["arch"]
  panel = images.labelled_panel(
      [data_row, dens_row, samp_row], ["data", "model density", "model samples"], cols,
      title=f"{arch} flow on 2-D toy densities; column label = test -log p(x) per point")
  return images.save_image(os.path.join(DOCS, "flows_toy2d.png"), panel)


def _axes():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt.subplots(figsize=(7, 4.2), dpi=120)


def _run(workdir: str) -> tuple[dict, float]:
  """(the run's config, its training steps per epoch)."""
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  with open(os.path.join(workdir, "run_info.jsonl")) as f:
    n_train = [json.loads(line) for line in f if line.strip()][0]["train_examples"]
  return config, n_train / config["data"]["batch_size"]


def _save(fig, ax, title: str, out: str) -> str:
  ax.set_xlabel("epochs")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  ax.set_title(title)
  fig.tight_layout()
  path = os.path.join(DOCS, out)
  fig.savefig(path)
  return path


TOP = 3.0   # bits/dim: the top of the curve figure; larger test means are marked at its edge
CPU_TARGET = 1.20   # bits/dim: what the CPU schedules of the MNIST flows aim for


def bpd_curves(workdirs: list[str], out: str = "flows_mnist_bpd_curve.png") -> str:
  fig, ax = _axes()
  papers = set()   # (value, arch) lines drawn: runs of one architecture share theirs
  medians = False   # the median's legend entry is drawn once
  for i, w in enumerate(workdirs):
    config, per_epoch = _run(w)
    rows = [json.loads(line) for line in open(os.path.join(w, "metrics.jsonl")) if line.strip()]
    test = [(r["step"] / per_epoch, r["test_ll/bpd"], r.get("test_ll/bpd_sem", 0.0))
            for r in rows if "test_ll/bpd" in r]
    # The newest evaluation of each step (an --mode eval rerun appends its record).
    test = sorted({e: (e, b, se) for e, b, se in test}.values())
    median = sorted({r["step"] / per_epoch: r["test_ll/bpd_p50"]
                     for r in rows if "test_ll/bpd_p50" in r}.items())
    train = [(r["step"] / per_epoch, r["loss"]) for r in rows if "loss" in r]
    color = f"C{i}"
    name = os.path.basename(os.path.normpath(w))
    if train:   # one legend entry for every run's faint training curve
      ax.plot(*zip(*train, strict=True), color=color, alpha=0.35, lw=0.8,
              label="faint: training loss (the run's colour)" if i == 0 else None)
    if test:
      e, b, se = map(np.asarray, zip(*test, strict=True))
      ok = b <= TOP
      if (~ok).any():   # the legend names the marker once
        ax.plot([], [], marker="^", color=color, ls="none",
                label=f"{name}: test mean above {TOP:g} (value below the marker)")
      ax.errorbar(e[ok], b[ok], yerr=se[ok], color=color, marker="o", ms=3, lw=1.5,
                  label=f"{name}: test mean ({b[-1]:.3f} ± {se[-1]:.3f} at {e[-1]:.1f} epochs)")
      for ei, bi, si in zip(e[~ok], b[~ok], se[~ok], strict=True):   # off the chart
        ax.plot([ei], [TOP - 0.04], marker="^", color=color, ms=6)
        ax.annotate(f"{bi:.1f}", (ei, TOP - 0.08), fontsize=7, ha="center", va="top",
                    color=color)
    if median:
      ax.plot(*zip(*median, strict=True), color=color, marker="s", ms=5, ls="none",
              label="squares: test median" if not medians else None)
      medians = True
    ref = config.get("reference", {})
    paper = (ref.get("value"), config["model"]["arch"])
    if paper[0] and paper not in papers:
      papers.add(paper)
      ax.axhline(paper[0], color="k", ls="--", lw=0.8, label=f"paper {paper[0]} ({paper[1]})")
  ax.axhline(CPU_TARGET, color="k", ls=":", lw=1.0, label=f"CPU target {CPU_TARGET:.2f}")
  ax.set_ylabel("bits/dim (8-bit, dequantized)")
  ax.set_ylim(0.9, TOP)
  return _save(fig, ax, "MNIST test bits/dim against epochs (2 CPU cores)", out)


def iwae_curve(workdirs: list[str], out: str = "iwae_mnist_curve.png") -> str:
  fig, ax = _axes()
  span = []   # every value drawn, so the paper's line stays in view
  for i, w in enumerate(workdirs):
    config, per_epoch = _run(w)
    points = []
    for path in sorted(glob.glob(os.path.join(w, "eval", "step_*.json"))):
      with open(path) as f:
        e = json.load(f)
      if "test_ll/nll_iwae" not in e["results"]:
        continue
      n = int(re.search(r"over (\d+) examples", e["units"]["test_ll/nll_iwae"]).group(1))
      points.append((e["step"] / per_epoch, -e["results"]["test_ll/nll_iwae"],
                     e["results"]["test_ll/nll_iwae_sem"], n))
    k = config["evals"]["test_ll"]["kwargs"]["k"]
    color, name = f"C{i}", os.path.basename(os.path.normpath(w))
    for n in sorted({p[3] for p in points}, reverse=True):
      ep, ll, se, _ = map(np.asarray, zip(*[p for p in points if p[3] == n], strict=True))
      span += list(ll - se) + list(ll + se)
      ax.errorbar(ep, ll, yerr=se, color=color, marker="o" if n >= 10000 else "s",
                  ms=4, lw=1.2, ls="-" if n >= 10000 else ":", capsize=2,
                  label=f"{name}: {n:,} test images, k={k} ({ll[-1]:.2f} ± {se[-1]:.2f} "
                        f"at {ep[-1]:.1f} epochs)")
    ref = config.get("reference", {})
    if ref.get("value"):
      span.append(-ref["value"])
      ax.axhline(-ref["value"], color="k", ls="--", lw=0.8,
                 label=f"paper −{ref['value']} (k={config['model']['k']}, "
                       f"{ref.get('epochs', 0):,.0f} epochs)")
  ax.set_ylim(min(span) - 1.0, max(span) + 1.0)
  ax.set_xlim(left=0)
  ax.set_ylabel("test log p̂(x), nats")
  return _save(fig, ax, "IWAE on binarized MNIST: test log-likelihood against epochs "
               "(2 CPU cores)", out)


if __name__ == "__main__":
  figure, dirs = sys.argv[1], sys.argv[2:]
  print({"flows_toy2d": flows_toy2d, "bpd_curves": bpd_curves,
         "iwae_curve": iwae_curve}[figure](dirs))
