"""DCGAN train-step speed: gen_jax's GAN family (four layer formulations) vs PyTorch, in one run.

Command:  python benchmarks/bench_dcgan.py [--steps 5] [--rounds 3] [--json out.json]

The model is pytorch/examples' DCGAN (dcgan/main.py): 64x64x3 images,
nz=100, ngf=ndf=64, batch 16, BatchNorm in G and D (D sees the real and the
fake batch separately), non-saturating BCE loss, Adam(2e-4, b1=0.5) for each
player, one D update then one G update per step. The gen_jax contenders are
`gen_jax.models.gan` with arch "dcgan" (parameter counts equal PyTorch's:
netG 3,576,704, netD 2,765,568), stepped by the generic trainer
(`trainers.sgd`, jitted with donation) on one resident batch:
  jax_transpose      stride-2 ConvTranspose as an lhs-dilated conv (a
                     straightforward port) and strided convs in D
  jax_subpixel       the same kernels computed as stride-1 conv + pixel shuffle
  jax_subpixel_s2d   plus D's stride-2 convs as space-to-depth + stride-1 conv
  jax_matmul         both as one matmul of 2x2 patches per layer (the
                     transposed conv's own FLOPs; XLA:CPU's matmul)
  jax_mixed          each pass by its fastest formulation (custom VJP): G's
                     forward and input gradient as the lhs-dilated conv, its
                     kernel gradient as the matmul; D's forward and kernel
                     gradient strided, its input gradient as the matmul
  torch_eager        pytorch/examples' netG/netD and training loop
All JAX contenders start from the same parameters, and the run checks that
their generator and discriminator outputs agree (max abs difference in the
JSON) before timing. One difference in work: pytorch/examples reuses the fake
batch of the D update for the G update; the gen_jax family draws a fresh z for
each update, so it runs one extra generator forward pass per step.

Each round times `--steps` steps of every contender in turn (the order
rotates between rounds); the table shows the median over rounds and the
ratio torch_eager / contender (> 1: faster than PyTorch).

A roofline beside it: each contender's FLOPs per step (XLA's cost analysis of
the compiled step; torch's FlopCounterMode for PyTorch), its GFLOP/s, and that
rate as a fraction of the machine's dense float32 matmul rate measured in the
same run (the better of XLA's and torch's 2048^3 products). "Needed" is the
fraction a JAX contender would have to reach to run in PyTorch's time / 1.2:
above 100% the target cannot be met with the same arithmetic.

Reference (2-core CPU, before this family): PyTorch 330 ms/step, a
straightforward JAX port with ConvTranspose 1,458 ms/step.
"""
import argparse
import json
import os
import time

import common  # benchmarks/common.py
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import config_lib, optim
from gen_jax.data import spec as spec_lib
from gen_jax.models import gan
from gen_jax.trainers import sgd

BATCH, SIZE, NZ, NGF = 16, 64, 100, 64
TARGET = 1.2   # the speed asked of the fastest formulation, as PyTorch's ms / ours
X_SHAPE = (SIZE, SIZE, 3)
JAX_CONTENDERS = {
    "jax_transpose": ("transpose", "strided"),
    "jax_subpixel": ("subpixel", "strided"),
    "jax_subpixel_s2d": ("subpixel", "s2d"),
    "jax_matmul": ("matmul", "matmul"),
    "jax_mixed": ("mixed", "mixed"),
}


def make_config(upsample: str, downsample: str):
  c = config_lib.base()
  c.family = "gan"
  c.model = gan.default_model(arch="dcgan", loss="nonsaturating", z_dim=NZ, g_ch=NGF, d_ch=NGF,
                              d_norm="batch", batch_norm=True, upsample=upsample,
                              downsample=downsample)
  c.data.update(variant="grayscale", batch_size=BATCH)
  c.optim.d = optim.adam(2e-4, b1=0.5)
  c.optim.g = optim.adam(2e-4, b1=0.5)
  return c


def jax_contender(upsample: str, downsample: str, x: jax.Array, params, state):
  """(chunk(n) -> ms/step, FLOPs per step by XLA's cost analysis) for one layer
  formulation, from given params."""
  config = make_config(upsample, downsample)
  family = gan.make(config, spec_lib.example(X_SHAPE))
  trainer = sgd.make(family, config)
  ts = trainer.init(jax.random.key(0), {"x": x})
  ts = ts.replace(params=jax.tree.map(jnp.copy, params), state=jax.tree.map(jnp.copy, state))
  # Compiled once, here: the same executable is timed and its cost analysed.
  step = jax.jit(lambda ts, x, i: trainer.step(ts, {"x": x}, jax.random.fold_in(
      jax.random.key(1), i)), donate_argnums=0).lower(ts, x, 0).compile()
  flops = common.compiled_flops(step)
  i = 0

  def chunk(n: int) -> float:
    nonlocal ts, i
    t0 = time.perf_counter()
    for _ in range(n):
      ts, _ = step(ts, x, i)
      i += 1
    jax.block_until_ready(ts)
    return (time.perf_counter() - t0) * 1e3 / n
  return chunk, flops


def output_differences(x, params, state) -> dict:
  """Max |difference| of G(z) and D(x) between each formulation and jax_transpose."""
  z = jax.random.normal(jax.random.key(2), (4, NZ))
  outs = {}
  for name, (up, down) in JAX_CONTENDERS.items():
    g, d = gan.make_nets(make_config(up, down).model, X_SHAPE)
    gz = g.apply({"params": params["g"], "batch_stats": state["g"]}, z, train=False)
    dx = d.apply({"params": params["d"], "batch_stats": state["d"]}, x[:4] * 2 - 1, train=False)
    outs[name] = (np.asarray(gz), np.asarray(dx))
  ref = outs["jax_transpose"]
  return {name: {"generator": float(np.abs(o[0] - ref[0]).max()),
                 "discriminator": float(np.abs(o[1] - ref[1]).max())}
          for name, o in outs.items()}


def torch_contender(torch, x_np: np.ndarray):
  """(chunk(n) -> ms/step, parameter counts, FLOPs per step) of pytorch/examples
  dcgan/main.py's netG, netD and training step (CPU); FLOPs by torch's FlopCounterMode."""
  nn = torch.nn

  class Generator(nn.Module):
    def __init__(self):
      super().__init__()
      self.main = nn.Sequential(
          nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(NGF * 8),
          nn.ReLU(True),
          nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 4),
          nn.ReLU(True),
          nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2),
          nn.ReLU(True),
          nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF),
          nn.ReLU(True),
          nn.ConvTranspose2d(NGF, 3, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
      return self.main(z)

  class Discriminator(nn.Module):
    def __init__(self):
      super().__init__()
      self.main = nn.Sequential(
          nn.Conv2d(3, NGF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
          nn.Conv2d(NGF, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2),
          nn.LeakyReLU(0.2, inplace=True),
          nn.Conv2d(NGF * 2, NGF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 4),
          nn.LeakyReLU(0.2, inplace=True),
          nn.Conv2d(NGF * 4, NGF * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 8),
          nn.LeakyReLU(0.2, inplace=True),
          nn.Conv2d(NGF * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
      return self.main(x).view(-1, 1).squeeze(1)

  torch.manual_seed(0)
  net_g, net_d = Generator(), Discriminator()
  counts = (sum(p.numel() for p in net_g.parameters()),
            sum(p.numel() for p in net_d.parameters()))
  criterion = nn.BCELoss()
  opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  real = torch.from_numpy(x_np.transpose(0, 3, 1, 2) * 2 - 1).contiguous()
  ones, zeros = torch.ones(BATCH), torch.zeros(BATCH)

  def chunk(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
      net_d.zero_grad()
      err_real = criterion(net_d(real), ones)
      err_real.backward()
      fake = net_g(torch.randn(BATCH, NZ, 1, 1))
      err_fake = criterion(net_d(fake.detach()), zeros)
      err_fake.backward()
      opt_d.step()
      net_g.zero_grad()
      err_g = criterion(net_d(fake), ones)
      err_g.backward()
      opt_g.step()
    return (time.perf_counter() - t0) * 1e3 / n

  from torch.utils import flop_counter  # pylint: disable=g-import-not-at-top
  with flop_counter.FlopCounterMode(display=False) as counter:
    chunk(1)   # one (untimed) step, counted: convolutions and matmuls, forward and backward
  return chunk, counts, float(counter.get_total_flops())


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=5, help="timed steps per round per contender")
  parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compiling")
  parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
  parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch row")
  parser.add_argument("--only", default=",".join(JAX_CONTENDERS),
                      help="comma-separated JAX contenders to time (default: all)")
  args = parser.parse_args(argv)
  only = [n for n in args.only.split(",") if n]
  unknown = sorted(set(only) - set(JAX_CONTENDERS))
  if unknown:
    parser.error(f"unknown contenders {unknown}; choices: {', '.join(JAX_CONTENDERS)}")

  devices = jax.devices()
  backend, device_kind = jax.default_backend(), devices[0].device_kind
  print(f"jax {jax.__version__}: backend {backend}, {len(devices)} x {device_kind}, "
        f"{os.cpu_count()} CPUs visible")
  x_np = np.random.default_rng(0).random((BATCH,) + X_SHAPE, dtype=np.float32)
  x = jnp.asarray(x_np)
  base = gan.make(make_config("transpose", "strided"), spec_lib.example(X_SHAPE))
  params, state = base.init(jax.random.key(0), {"x": x})
  diffs = output_differences(x, params, state)
  print("max |output - jax_transpose output|:", json.dumps(diffs))
  contenders, flops = {}, {}
  for name, (up, down) in JAX_CONTENDERS.items():
    if name in only:
      contenders[name], flops[name] = jax_contender(up, down, x, params, state)
  torch, torch_note = common.import_torch(args.no_torch)
  torch_counts = None
  if torch is not None:
    contenders["torch_eager"], torch_counts, flops["torch_eager"] = torch_contender(torch, x_np)
    print(f"torch {torch.__version__}: cpu ({torch.get_num_threads()} threads); "
          f"parameters netG {torch_counts[0]:,}, netD {torch_counts[1]:,}")
  elif torch_note:
    print(torch_note)

  names = list(contenders)
  for name in names:
    t0 = time.perf_counter()
    contenders[name](1)
    print(f"{name}: first step {time.perf_counter() - t0:.1f} s (JAX steps are compiled "
          f"before it)", flush=True)
    contenders[name](args.warmup)
  per_round = common.alternating_rounds(
      {n: (lambda n=n: contenders[n](args.steps)) for n in names}, args.rounds, fmt=".1f")
  results = common.medians(per_round)
  gemm = common.gemm_rate(torch)
  peak = max(gemm.values())
  torch_ms = results.get("torch_eager")
  speedup = {name: (torch_ms / ms if torch_ms else None) for name, ms in results.items()}
  rate = {n: (flops[n] / results[n] / 1e6 if flops.get(n) else None) for n in names}
  fraction = {n: (r / peak if r else None) for n, r in rate.items()}
  # What 1.2x PyTorch asks of each JAX contender: its own FLOPs in torch_ms / 1.2.
  needed = {n: (flops[n] / (torch_ms / TARGET) / 1e6 / peak if torch_ms and flops.get(n)
                else None) for n in names if n != "torch_eager"}
  print(f"\nms/step, median of {args.rounds} rounds of {args.steps} steps, DCGAN 64x64x3, "
        f"batch {BATCH} ({backend}, {device_kind})\n")
  print(f"dense float32 matmul rate (2048^3, best of 5): "
        + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in gemm.items()) + "\n")
  print(f"| contender | ms/step | torch_eager / contender | GFLOP/step | GFLOP/s | "
        f"of the matmul rate | needed for {TARGET}x |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for name in names:
    s = f"{speedup[name]:.2f}" if speedup[name] else "n/a"
    f_ = f"{flops[name] / 1e9:.2f}" if flops.get(name) else "n/a"
    r_ = f"{rate[name]:.1f}" if rate[name] else "n/a"
    p_ = f"{fraction[name]:.0%}" if fraction[name] else "n/a"
    n_ = f"{needed[name]:.0%}" if needed.get(name) else ""
    print(f"| {name} | {results[name]:.1f} | {s} | {f_} | {r_} | {p_} | {n_} |")
  report = common.fields(
      "dcgan_train_step",
      model="pytorch/examples DCGAN 64x64x3, nz=100, ngf=ndf=64, BatchNorm, BCE, "
            "Adam(2e-4, 0.5): one D update then one G update",
      batch_size=BATCH,
      torch_version=torch.__version__ if torch is not None else None,
      torch_threads=torch.get_num_threads() if torch is not None else None,
      torch_parameter_counts=torch_counts,
      steps=args.steps, rounds=args.rounds, warmup=args.warmup,
      max_abs_output_difference_vs_jax_transpose=diffs,
      ms_per_step=results,
      ms_per_step_per_round=per_round,
      torch_over_contender=speedup,
      flops_per_step=flops,
      gflop_per_s=rate,
      matmul_gflop_per_s=gemm,
      fraction_of_matmul_rate=fraction,
      fraction_needed_for_target=needed,
      target=TARGET,
      skipped=[torch_note] if torch_note else [],
  )
  common.write_json(args.json, report)
  return report


if __name__ == "__main__":
  main()
