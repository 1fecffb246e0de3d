"""Where the DCGAN step's time goes: each layer's forward and backward, per formulation.

  python benchmarks/profile_dcgan.py [--json FILE] [--no-torch]

For every stride-2 layer of pytorch/examples' DCGAN at batch 16 (the generator's
four 4x4 transposed convs, the discriminator's four 4x4 strided convs) it times,
in ms, the forward pass, the input gradient (dx) and the kernel gradient (dk)
of each gen_jax formulation in `gen_jax.nn.gan_nets` (each jitted alone, so XLA
drops the unused forward from the gradients), and PyTorch's forward, forward +
dx, forward + dk and forward + both. It also times the generator's BatchNorm +
ReLU layers (forward and backward) and one Adam update of each player's
parameters. Medians of 5 repetitions of 10 calls. `bench_dcgan.py` times the
whole step; this says which parts make it. Run it alone.
"""
import argparse
import os
import time

import common  # benchmarks/common.py
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax.nn import gan_nets

BATCH = 16
UP = [(4, 512, 256), (8, 256, 128), (16, 128, 64), (32, 64, 3)]      # (H, c_in, c_out)
DOWN = [(64, 3, 64), (32, 64, 128), (16, 128, 256), (8, 256, 512)]
PARAMS = {"g": 3_576_704, "d": 2_765_568}                              # netG, netD


def timed(f, n: int = 10, reps: int = 5) -> float:
  """Median ms per call of f (which returns something to block on)."""
  jax.block_until_ready(f())
  jax.block_until_ready(f())
  out = []
  for _ in range(reps):
    t0 = time.perf_counter()
    for _ in range(n):
      r = f()
    jax.block_until_ready(r)
    out.append((time.perf_counter() - t0) * 1e3 / n)
  return float(np.median(out))


def jax_parts(op, x, k) -> dict:
  """{"forward", "dx", "dk"} ms of the linear map op(x, k)."""
  fwd = jax.jit(op)
  dy = jax.random.normal(jax.random.key(3), fwd(x, k).shape)
  dx = jax.jit(lambda x, k, dy: jax.vjp(lambda x: op(x, k), x)[1](dy)[0])
  dk = jax.jit(lambda x, k, dy: jax.vjp(lambda k: op(x, k), k)[1](dy)[0])
  return {"forward": timed(lambda: fwd(x, k)), "dx": timed(lambda: dx(x, k, dy)),
          "dk": timed(lambda: dk(x, k, dy))}


def torch_parts(torch, up: bool, h: int, ci: int, co: int) -> dict:
  layer = (torch.nn.ConvTranspose2d if up else torch.nn.Conv2d)(ci, co, 4, 2, 1, bias=False)
  x = torch.randn(BATCH, ci, h, h, requires_grad=True)
  dy = torch.randn_like(layer(x))

  def forward():
    with torch.no_grad():
      return layer(x)
  return {"forward": timed(forward),
          "forward+dx": timed(lambda: torch.autograd.grad(layer(x), x, dy)),
          "forward+dk": timed(lambda: torch.autograd.grad(layer(x), layer.weight, dy)),
          "forward+both": timed(lambda: torch.autograd.grad(layer(x), (x, layer.weight), dy))}


def bn_relu_parts() -> dict:
  """The generator's BatchNorm (batch statistics) + ReLU on each upsampled activation."""
  out = {}
  for h, _, co in UP[:-1]:
    x = jax.random.normal(jax.random.key(0), (BATCH, 2 * h, 2 * h, co))
    scale, bias = jnp.ones((co,)), jnp.zeros((co,))

    def f(x, scale, bias):
      mean = x.mean((0, 1, 2))
      var = x.var((0, 1, 2))
      return jax.nn.relu((x - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias)
    fwd = jax.jit(f)
    bwd = jax.jit(jax.grad(lambda *a: f(*a).sum(), argnums=(0, 1, 2)))
    out[f"{2 * h}x{2 * h}x{co}"] = {"forward": timed(lambda: fwd(x, scale, bias)),
                                    "forward+backward": timed(lambda: bwd(x, scale, bias))}
  return out


def adam_parts() -> dict:
  out = {}
  tx = optax.adam(2e-4, b1=0.5)
  for player, n in PARAMS.items():
    p = jnp.zeros((n,))
    g = jnp.full((n,), 1e-3)
    state = tx.init(p)

    @jax.jit
    def update(p, state, g):
      u, state = tx.update(g, state, p)
      return optax.apply_updates(p, u), state
    out[player] = timed(lambda: update(p, state, g))
  return out


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
  parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
  args = parser.parse_args(argv)
  torch, torch_note = common.import_torch(args.no_torch)
  if torch is not None:
    torch.set_num_threads(os.cpu_count() or 1)
  layers = {}
  for kind, shapes, impls, op in (
      ("up", UP, ("matmul", "subpixel", "transpose"), gan_nets.conv_transpose_2x),
      ("down", DOWN, ("matmul", "s2d", "strided"), gan_nets.conv_stride2)):
    for h, ci, co in shapes:
      name = f"{kind} {h}x{h} {ci}->{co}"
      x = jax.random.normal(jax.random.key(0), (BATCH, h, h, ci))
      k = jax.random.normal(jax.random.key(1), (4, 4, ci, co)) * 0.02
      row = {impl: jax_parts(lambda x, k, impl=impl: op(x, k, impl), x, k) for impl in impls}
      if torch is not None:
        row["torch"] = torch_parts(torch, kind == "up", h, ci, co)
      layers[name] = row
      print(name + ": " + " | ".join(
          f"{impl} " + " ".join(f"{p} {v:.1f}" for p, v in parts.items())
          for impl, parts in row.items()), flush=True)
  bn = bn_relu_parts()
  print("BatchNorm+ReLU:", {k: {p: round(v, 2) for p, v in d.items()} for k, d in bn.items()})
  adam = adam_parts()
  print("Adam update ms:", {k: round(v, 2) for k, v in adam.items()})
  report = common.fields("dcgan_profile", batch_size=BATCH, layers_ms=layers,
                         batchnorm_relu_ms=bn, adam_update_ms=adam,
                         torch_version=torch.__version__ if torch is not None else None,
                         skipped=[torch_note] if torch_note else [])
  common.write_json(args.json, report)
  return report


if __name__ == "__main__":
  main()
