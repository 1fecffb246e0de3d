"""Builds the committed figures in docs/ from run workdirs (never drawn by hand).

  python docs/make_figures.py flows_toy2d runs/nsf_moons runs/nsf_8gaussians ...

`flows_toy2d`: one column per toy-density run: the training data (20,000 of
the generated points), the model density heat map and 20,000 model samples,
read from each workdir's samples/ folder.
"""
import glob
import json
import os
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


if __name__ == "__main__":
  figure, dirs = sys.argv[1], sys.argv[2:]
  print({"flows_toy2d": flows_toy2d}[figure](dirs))
