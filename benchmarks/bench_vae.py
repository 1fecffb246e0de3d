"""VAE train-step speed: gen_jax's trainer vs bare JAX, lax.scan and PyTorch, in one run.

Command:  python benchmarks/bench_vae.py [--steps 300] [--rounds 5] [--json out.json]
          (gen_jax installed, e.g. `pip install -e .[bench]` for the torch rows)

Measures milliseconds per train step of the same MLP VAE (784-400-20, ReLU,
Bernoulli decoder, single-sample ELBO, Adam lr 1e-3, batch 128 of dynamically
binarized 28x28 images) on whatever JAX backend is present:
  trainer      gen_jax's real step as `loop.train` drives it: `loop.make_step_fn`
               with experiments/vae_mnist.py's steps_per_dispatch (k steps per
               call, state donated), fed by the run's loader + `parallel.to_global`
  trainer_k1   the same with one step per call
  jax_bare     `jax.jit(step, donate_argnums=0)` on one batch already on device
  jax_scan     `loop.make_step_fn` with steps_per_dispatch=100 (a lax.scan of
               100 steps per call) on 100 batches already on device
  matmul_floor the step's eleven matrix products alone, one jitted call per
               step: a floor for any float32 step on XLA's matmul kernels
  torch_eager  pytorch/examples' VAE (fc1/fc21/fc22/fc3/fc4, BCE(sum) + KLD) on
               one batch already on the device, binarized afresh every step
  torch_compile  the same with torch.compile(model); CUDA only
The data are 60,000 random u8 images in a temporary npz (no dataset, no
network). Each round times `--steps` steps of every contender in turn (the
order rotates between rounds) and blocks once per chunk; the table shows the
median over rounds. The torch rows need the optional `bench` extra (torch) and
are skipped when it is absent or with --no-torch.

Reference figures (ms/step, MLP VAE 784-400-20, batch 128):
  2-core CPU:  PyTorch 5.8 vs a plain JAX step 4.4 (1.29x).
  H100:        PyTorch eager 2.80, torch.compile 2.30, bare JAX jit 0.215,
               100 steps in one lax.scan 0.077.
"""
import argparse
import os
import tempfile
import time
from typing import Callable

import common  # benchmarks/common.py  pylint: disable=g-import-not-at-top
import jax
import numpy as np

from gen_jax import config_lib, parallel
from gen_jax.trainers import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(REPO, "experiments", "quickstart.py")
VAE_MNIST = os.path.join(REPO, "experiments", "vae_mnist.py")
BATCH = 128
SCAN_K = 100                    # steps per call of jax_scan
NUM_TRAIN, NUM_TEST = 60_000, 1_000
IMAGE_SHAPE = (28, 28)

# A contender times n train steps (blocking at the end) and returns ms/step.
Chunk = Callable[[int], float]


def write_npz(path: str) -> None:
  """Random u8 images standing in for MNIST: x_train u8[60000, 28, 28], x_test."""
  rng = np.random.default_rng(0)
  np.savez(path,
           x_train=rng.integers(0, 256, (NUM_TRAIN,) + IMAGE_SHAPE, dtype=np.uint8),
           x_test=rng.integers(0, 256, (NUM_TEST,) + IMAGE_SHAPE, dtype=np.uint8))


def make_config(npz_path: str):
  """The quickstart config turned into pytorch/examples' VAE on the npz data."""
  c = config_lib.load_config(QUICKSTART)
  c.model.update(hidden=(400,), latent_dim=20, activation="relu",
                 likelihood="bernoulli", objective="elbo")
  c.data.update(name="npz", path=npz_path, batch_size=BATCH, variant="binarized_dynamic")
  c.evals = {}
  c.eval_at_end = False
  c.steps_per_dispatch = 1
  assert c.optim.model.name == "adam" and c.optim.model.lr == 1e-3, c.optim.model
  return c


def _timed(fn: Callable[[], object], steps: int) -> float:
  """Runs fn (which blocks when done) and returns ms per step."""
  t0 = time.perf_counter()
  fn()
  return (time.perf_counter() - t0) * 1e3 / steps


def trainer_contender(run: loop.Run, k: int) -> Chunk:
  """gen_jax's step with its data path, exactly as `loop.train` drives it: k steps per
  call. Runs ceil(n / k) calls (at least one) and returns ms per step."""
  ts = loop.init_or_restore(run)
  step_fn = loop.make_step_fn(run, k=k)
  loader = run.loader
  step = 0

  def chunk(n: int) -> float:
    calls = max(1, -(-n // k))

    def go():
      nonlocal ts, step
      for _ in range(calls):
        raw = parallel.to_global(loader.batches(step, k), run.mesh, batch_dim=1)
        ts, _ = step_fn(ts, raw, run.base_rng)
        step += k
      jax.block_until_ready(ts)
    return _timed(go, calls * k)
  return chunk


def bare_contender(run: loop.Run) -> Chunk:
  """The trainer's own step function, jitted with donation, on one resident batch."""
  step_fn = jax.jit(loop.train_step_fn(run), donate_argnums=0)
  ts = loop.init_or_restore(run)
  x = parallel.to_global({"x": run.train_data.x[:BATCH]}, run.mesh)

  def chunk(n: int) -> float:
    def go():
      nonlocal ts
      for _ in range(n):
        ts, _ = step_fn(ts, x, run.base_rng)
      jax.block_until_ready(ts)
    return _timed(go, n)
  return chunk


def scan_contender(run: loop.Run) -> Chunk:
  """`loop.make_step_fn` with steps_per_dispatch=SCAN_K on SCAN_K resident batches.

  Runs ceil(n / SCAN_K) calls (at least one) and returns ms per step.
  """
  step_fn = loop.make_step_fn(run, k=SCAN_K)
  ts = loop.init_or_restore(run)
  x = run.train_data.x[:SCAN_K * BATCH].reshape((SCAN_K, BATCH) + run.train_data.x.shape[1:])
  raw = parallel.to_global({"x": x}, run.mesh, batch_dim=1)

  def chunk(n: int) -> float:
    calls = max(1, -(-n // SCAN_K))

    def go():
      nonlocal ts
      for _ in range(calls):
        ts, _ = step_fn(ts, raw, run.base_rng)
      jax.block_until_ready(ts)
    return _timed(go, calls * SCAN_K)
  return chunk


def floor_contender() -> Chunk:
  """The step's matrix products alone, in one jitted call per step: a floor, not a step.

  The VAE's Dense layers on a batch of BATCH rows: fc1 784->400 (forward and
  kernel gradient: the input needs no gradient), the encoder head 400->40
  (mean and log-variance), fc3 20->400 and fc4 400->784 (forward, input and
  kernel gradients): eleven float32 products of distinct random arrays, all
  returned. Everything else in a step (binarization, activations, the loss,
  Adam, the gradient norm) only adds to this.
  """
  draw = common.random_arrays()
  x, w1, h1, dh1 = draw(BATCH, 784), draw(784, 400), draw(BATCH, 400), draw(BATCH, 400)
  w2, z, e = draw(400, 40), draw(BATCH, 20), draw(BATCH, 40)
  w3, h3, dh3, w4, dy = draw(20, 400), draw(BATCH, 400), draw(BATCH, 400), draw(400, 784), \
      draw(BATCH, 784)

  @jax.jit
  def products(*a):
    x, w1, h1, dh1, w2, z, e, w3, h3, dh3, w4, dy = a
    return [x @ w1, h1 @ w2, z @ w3, h3 @ w4,      # forward
            h3.T @ dy, dy @ w4.T,                   # fc4: kernel, input gradients
            z.T @ dh3, dh3 @ w3.T,                  # fc3
            h1.T @ e, e @ w2.T,                     # encoder head
            x.T @ dh1]                              # fc1: kernel gradient only
  args = (x, w1, h1, dh1, w2, z, e, w3, h3, dh3, w4, dy)

  def chunk(n: int) -> float:
    def go():
      for _ in range(n):
        out = products(*args)
      jax.block_until_ready(out)
    return _timed(go, n)
  return chunk


def torch_contenders(torch, x_u8: np.ndarray) -> tuple[dict, str, list[str]]:
  """({name: Chunk}, torch device description, skip notes) for the PyTorch VAE."""
  nn, F = torch.nn, torch.nn.functional

  class VAE(nn.Module):
    """pytorch/examples vae/main.py."""

    def __init__(self):
      super().__init__()
      self.fc1 = nn.Linear(784, 400)
      self.fc21 = nn.Linear(400, 20)
      self.fc22 = nn.Linear(400, 20)
      self.fc3 = nn.Linear(20, 400)
      self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
      h1 = F.relu(self.fc1(x.view(-1, 784)))
      mu, logvar = self.fc21(h1), self.fc22(h1)
      z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
      return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar

  def loss_fn(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld

  cuda = torch.cuda.is_available()
  device = torch.device("cuda" if cuda else "cpu")
  where = (f"cuda ({torch.cuda.get_device_name()})" if cuda
           else f"cpu ({torch.get_num_threads()} threads)")
  probs = torch.from_numpy(x_u8.astype(np.float32) / 255.0).to(device)   # f32[B, 28, 28]
  sync = torch.cuda.synchronize if cuda else (lambda: None)

  def contender(compile_model: bool) -> Chunk:
    torch.manual_seed(0)
    model = VAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if compile_model else model

    def chunk(n: int) -> float:
      def go():
        for _ in range(n):
          x = torch.bernoulli(probs)              # dynamic binarization, every step
          opt.zero_grad(set_to_none=True)
          recon, mu, logvar = forward(x)
          loss_fn(recon, x, mu, logvar).backward()
          opt.step()
        sync()
      return _timed(go, n)
    return chunk

  contenders = {"torch_eager": contender(False)}
  notes = []
  if cuda:
    contenders["torch_compile"] = contender(True)
  else:
    notes.append("torch_compile: skipped on CPU (needs a C++ toolchain and compiles "
                 "slowly; run on a CUDA GPU)")
  return contenders, where, notes


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300,
                      help="timed steps per round per contender (jax_scan rounds up "
                           f"to a multiple of {SCAN_K})")
  parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported")
  parser.add_argument("--warmup", type=int, default=20,
                      help="untimed steps per contender before the rounds (after compiling)")
  parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
  parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
  args = parser.parse_args(argv)
  if args.steps < 1 or args.rounds < 1 or args.warmup < 0:
    parser.error("--steps and --rounds must be >= 1 and --warmup >= 0")

  devices = jax.devices()
  backend, device_kind = jax.default_backend(), devices[0].device_kind
  print(f"jax {jax.__version__}: backend {backend}, {len(devices)} x {device_kind}")
  torch, torch_absent = common.import_torch(args.no_torch)
  notes = []
  if torch is None:
    print(f"torch absent: {torch_absent}. Skipping torch_eager and torch_compile.")

  with tempfile.TemporaryDirectory() as tmp:
    npz = os.path.join(tmp, "random_28x28.npz")
    write_npz(npz)
    run = loop.setup(make_config(npz), os.path.join(tmp, "workdir"))
    try:
      k = config_lib.load_config(VAE_MNIST).steps_per_dispatch
      print(f"trainer: {k} steps per call (experiments/vae_mnist.py's steps_per_dispatch)")
      contenders = {"trainer": trainer_contender(run, k), "trainer_k1": trainer_contender(run, 1),
                    "jax_bare": bare_contender(run),
                    "jax_scan": scan_contender(run), "matmul_floor": floor_contender()}
      if torch is not None:
        extra, torch_device, notes = torch_contenders(torch, run.train_data.x[:BATCH, ..., 0])
        contenders.update(extra)
        print(f"torch {torch.__version__}: {torch_device}")
      for note in notes:
        print(note)

      names = list(contenders)
      for name in names:  # compile and warm up
        contenders[name](max(args.warmup, 1))
      per_round = common.alternating_rounds(
          {n: (lambda n=n: contenders[n](args.steps)) for n in names}, args.rounds)
    finally:
      run.close()

  results = common.medians(per_round)
  relative = {name: ms / results["jax_scan"] for name, ms in results.items()}
  print(f"\nms/step, median of {args.rounds} rounds of {args.steps} steps, batch {BATCH}, "
        f"MLP VAE 784-400-20 ({backend}, {device_kind})\n")
  print("| contender | ms/step | relative to jax_scan |")
  print("|---|---:|---:|")
  for name in names:
    print(f"| {name} | {results[name]:.3f} | {relative[name]:.2f}x |")
  ratios = {"trainer/jax_scan": common.ratio(results, "trainer", "jax_scan"),
            "torch_eager/trainer_k1": common.ratio(results, "torch_eager", "trainer_k1"),
            "torch_eager/jax_bare": common.ratio(results, "torch_eager", "jax_bare"),
            "torch_eager/trainer": common.ratio(results, "torch_eager", "trainer")}
  print()
  print(f"trainer / jax_scan = {ratios['trainer/jax_scan']:.2f} (target <= 1.3)")
  for key in ("torch_eager/jax_bare", "torch_eager/trainer"):
    print(f"{key} = {common.fmt_ratio(ratios[key], 'torch absent')} (target >= 2 on CPU)")

  report = common.fields(
      "vae_train_step",
      model="MLP VAE 784-400-20, ReLU, Bernoulli, ELBO, Adam 1e-3",
      batch_size=BATCH,
      torch_version=torch.__version__ if torch is not None else None,
      torch_threads=torch.get_num_threads() if torch is not None else None,
      steps=args.steps, rounds=args.rounds, warmup=args.warmup,
      scan_steps_per_call=SCAN_K,
      trainer_steps_per_call=k,
      ms_per_step=results,
      ms_per_step_per_round=per_round,
      relative_to_jax_scan=relative,
      ratios=ratios,
      skipped=([f"torch: {torch_absent}"] if torch is None else []) + notes,
  )
  common.write_json(args.json, report)
  return report


if __name__ == "__main__":
  main()
