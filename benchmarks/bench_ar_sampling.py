"""Sampling speed of the autoregressive family: cached loop vs naive re-forward, per 28x28 image.

Command:  python benchmarks/bench_ar_sampling.py [--n 4] [--reps 1] [--arch nade,made,...]
          [--json benchmarks/results/ar_sampling_cpu_2core.json]

Models: the `cpu` variants of experiments/{nade,made,pixelcnn}_binarized_mnist.py
(NADE H=500, MADE 1x500, PixelCNN 5 residual blocks x 32 features) and of
experiments/gated_pixelcnn_fashion_mnist.py with a Bernoulli head (Gated
PixelCNN, 4 layers x 32 features), on 28x28x1 binary images, with freshly
initialized parameters (the speed does not depend on the values). Both
samplers are one jitted program each: "cached" keeps the per-layer state of
earlier positions (NADE's running pre-activation, MADE's first-layer
pre-activation, every PixelCNN layer's activation buffer) and computes one
position per step; "naive" re-runs the whole forward pass for each of the 784
positions. Compile time (lower + compile) is reported apart from run time; run
time is the median over `--reps` calls of n images, reported in ms per image.
Before timing, the two are checked to draw the same images for the same key.
"""
import argparse
import os
import statistics
import time

import common  # benchmarks/common.py
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import config_lib
from gen_jax.data import spec as spec_lib
from gen_jax.models import autoregressive

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = {
    "nade": "nade_binarized_mnist.py:cpu",
    "made": "made_binarized_mnist.py:cpu",
    "pixelcnn": "pixelcnn_binarized_mnist.py:cpu",
    "gated_pixelcnn": "gated_pixelcnn_fashion_mnist.py:cpu",
}
SHAPE = (28, 28, 1)


def make_family(arch: str):
  """(family, params) of the experiment's cpu model on 28x28 binary images."""
  config = config_lib.load_config(os.path.join(REPO, "experiments", EXPERIMENTS[arch]))
  config.model.likelihood = "bernoulli"
  config.data.variant = "binarized_static"
  family = autoregressive.make(config, spec_lib.example(SHAPE))
  params, _ = jax.jit(family.init)(jax.random.key(0), {"x": jnp.zeros((1,) + SHAPE)})
  return family, params


def time_sampler(fn, params, rng, reps: int) -> tuple[float, float, np.ndarray]:
  """(compile seconds, median run seconds, samples) of jit(fn)(params, rng)."""
  t0 = time.perf_counter()
  compiled = jax.jit(fn).lower(params, rng).compile()
  compile_s = time.perf_counter() - t0
  out = np.asarray(compiled(params, rng))
  runs = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(params, rng))
    runs.append(time.perf_counter() - t0)
  return compile_s, statistics.median(runs), out


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--n", type=int, default=4, help="images per sampling call")
  parser.add_argument("--reps", type=int, default=1, help="timed calls per sampler")
  parser.add_argument("--arch", default=",".join(EXPERIMENTS), help="comma-separated archs")
  parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
  args = parser.parse_args(argv)
  rows = {}
  for arch in args.arch.split(","):
    family, params = make_family(arch)
    rng = jax.random.key(1)
    def cached_fn(p, r, family=family):
      return family.sample(p, {}, r, args.n)

    def naive_fn(p, r, family=family):
      return family.sample(p, {}, r, args.n, cached=False)
    cached = time_sampler(cached_fn, params, rng, args.reps)
    naive = time_sampler(naive_fn, params, rng, args.reps)
    same = bool((cached[2] == naive[2]).all())
    rows[arch] = {
        "cached_ms_per_image": 1e3 * cached[1] / args.n,
        "naive_ms_per_image": 1e3 * naive[1] / args.n,
        "speedup": naive[1] / cached[1],
        "cached_compile_s": cached[0], "naive_compile_s": naive[0],
        "same_samples": same,
    }
    r = rows[arch]
    print(f"{arch:15s} cached {r['cached_ms_per_image']:9.1f} ms/image   naive "
          f"{r['naive_ms_per_image']:9.1f} ms/image   speed-up {r['speedup']:6.1f}x   "
          f"compile {cached[0]:.1f} s / {naive[0]:.1f} s   same samples: {same}", flush=True)
  result = common.fields(
      "ar_sampling_28x28",
      load_average_at_end=list(os.getloadavg()),
      images_per_call=args.n, reps=args.reps, models=EXPERIMENTS, results=rows)
  common.write_json(args.json, result)
  return result


if __name__ == "__main__":
  main()
