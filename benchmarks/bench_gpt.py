"""Char GPT train step and decoding: gen_jax vs PyTorch nanoGPT, side by side in one run.

Command:  python benchmarks/bench_gpt.py [--steps 100] [--rounds 5] [--compile]
              [--torch-threads N] [--peak-tflops T] [--json out.json]
          (gen_jax installed, e.g. `pip install -e .[bench]` for the torch rows)

Times nanoGPT's CPU character model, the "cpu" variant of
experiments/gpt_shakespeare_char.py (4 layers, 4 heads, 128 wide, block 64,
vocabulary 65, biases, no dropout, batch 12; AdamW lr 1e-3, betas (0.9, 0.99),
weight decay 0.1 on matrices, gradient clipping 1.0), on whatever JAX backend
is present. Train-step contenders, in milliseconds per step:
  trainer         gen_jax's real step: `loop.make_step_fn(run, k)` with the
                  experiment's steps_per_dispatch k (a lax.scan of k steps
                  per call, state donated) fed by k of the run's loader
                  batches + `parallel.to_global`, as `loop.train` drives it
                  (warmup + cosine schedule included); ms per step
  trainer_k1      the same at one step per call
  matmul_floor    the step's matrix products alone (every Dense's forward,
                  input and kernel gradients, attention's six batched products,
                  the tied head's three), one jitted call per step: a floor
                  for any float32 step on XLA's matmul kernels
  torch_compile   the same with torch.compile(model); only with --compile
                  (compiling on CPU takes minutes and needs a C++ toolchain)
Decode contenders, in new tokens per second at batch 1 and batch 12 (a
1-token prompt, 63 greedy new tokens, filling the 64-token context):
  kv_cache        `sampling.make_sampler` over `GPT.decode` with an
                  `init_cache` KV cache, one jitted call (compiled on the
                  first call, timed on later ones)
  full_forward    `sampling.sample_full`: the whole forward over a 64-token
                  buffer for every new token
Both decoders run once before timing and must agree token for token.

The data are ~200k random characters over a 65-symbol alphabet in a
temporary text file read by the `txt` source (no dataset, no network). Each
round times `--steps` steps of every train contender and `--decode-calls`
calls of every decoder, in an order that rotates between rounds, blocking
once per chunk; the table shows the median over rounds and the ratio
"PyTorch / gen_jax" (torch_eager's ms/step over the row's: above 1 means the
row is faster than PyTorch eager). With a peak (--peak-tflops, or by default
989 for a device whose kind names H100, bf16 dense, and 312 for A100) the
train rows also get nanoGPT's `estimate_mfu`: (6 N + 12 L H Q T) flops per
token, N the parameter count without the position embeddings. --dtype
bfloat16 runs both frameworks in mixed precision (gen_jax's model.dtype,
torch autocast). The torch rows need the optional `bench` extra (torch) and
are skipped when it is absent or with --no-torch; torch keeps its default
thread count unless --torch-threads is given (on a machine whose cores are
busy with other work, torch's OpenMP threads can be far slower than a single
one: compare --torch-threads 1).

Reference figures (ms/step), measured before this benchmark existed, not by it:
  2-core CPU, char GPT:  PyTorch 43.9 vs a plain JAX/Flax port 66.7.
  H100, by the stack's measurements, the baby GPT (6 layers, 6 heads, 384
  wide, T=256, batch 64, bf16), not this benchmark's shapes: PyTorch eager
  14.4, torch.compile 10.7, bare JAX jit 6.27, 100 steps in one lax.scan 6.08.
"""
import argparse
import dataclasses
import importlib.util
import os
import tempfile
import time
from typing import Callable

import common  # benchmarks/common.py
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import config_lib, parallel
from gen_jax.inference import sampling
from gen_jax.models import gpt
from gen_jax.nn import transformer
from gen_jax.trainers import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENT = os.path.join(REPO, "experiments", "gpt_shakespeare_char.py") + ":cpu"
TORCH_NANOGPT = os.path.join(REPO, "benchmarks", "torch_nanogpt.py")
# nanoGPT's tiny-shakespeare character set: 65 symbols.
ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NUM_CHARS = 200_000
DECODE_BATCHES = (1, 12)
PROMPT_LEN = 1
TORCH_POOL = 32                 # distinct random torch batches, cycled
PEAKS_TFLOPS = (("H100", 989.0), ("A100", 312.0))   # dense bf16, by device kind


@dataclasses.dataclass
class Contender:
  """One row: `run()` does a round's work (blocking at the end) and returns its figure."""
  name: str
  unit: str                     # "ms/step" or "tokens/s"
  run: Callable[[], float]
  warmup: Callable[[], object]


def write_text(path: str) -> None:
  """NUM_CHARS random characters drawn uniformly from ALPHABET, as UTF-8."""
  rng = np.random.default_rng(0)
  chars = np.array(list(ALPHABET))[rng.integers(0, len(ALPHABET), NUM_CHARS)]
  with open(path, "w", encoding="utf-8", newline="") as f:
    f.write("".join(chars))


def make_config(txt_path: str, dtype: str):
  """The "cpu" char GPT on the text file, without evaluations."""
  c = config_lib.load_config(EXPERIMENT, [
      "data.name=txt", f"data.path={txt_path}", "data.train_split=nanogpt_train",
      "data.eval_split=nanogpt_val", "eval_at_end=False", f"model.dtype={dtype}"])
  c.evals = {}
  m, o = c.model, c.optim.model
  assert (m.n_layer, m.n_head, m.n_embd, m.block_size, m.dropout, m.bias) == \
      (4, 4, 128, 64, 0.0, True), m
  assert (c.data.block_size, c.data.batch_size) == (64, 12), c.data
  assert (o.name, o.lr, o.b2, o.weight_decay, o.grad_clip_norm) == \
      ("adamw", 1e-3, 0.99, 0.1, 1.0), o
  return c


def _ms_per_step(t0: float, steps: int) -> float:
  return (time.perf_counter() - t0) * 1e3 / steps


def trainer_contender(name: str, run: loop.Run, k: int, steps: int, warmup: int) -> Contender:
  """gen_jax's step with its data path as `loop.train` drives it, k steps per call.

  A chunk of n steps runs ceil(n / k) calls (at least one); the figure is ms per step.
  """
  ts = loop.init_or_restore(run)
  step_fn = loop.make_step_fn(run) if k == 1 else loop.make_step_fn(run, k=k)
  loader = run.loader
  step = 0

  def chunk(n: int) -> float:
    nonlocal ts, step
    calls = max(1, -(-n // k))
    t0 = time.perf_counter()
    for _ in range(calls):
      raw = parallel.to_global(loader.batches(step, k), run.mesh, batch_dim=1)
      ts, _ = step_fn(ts, raw, run.base_rng)
      step += k
    jax.block_until_ready(ts)
    return _ms_per_step(t0, calls * k)
  return Contender(name, "ms/step", lambda: chunk(steps), lambda: chunk(max(warmup, 1)))


def matmul_floor_contender(m, batch: int, vocab: int, steps: int) -> Contender:
  """Every matrix product of one train step, and nothing else, in one jitted call.

  Per layer: each Dense's forward x W, input gradient dy W^T and kernel
  gradient x^T dy (c_attn, attn c_proj, c_fc, mlp c_proj, on [B T, features]
  rows), attention's two forward batched products (q k^T, p v) and four
  backward ones; then the tied head's forward and two gradients. The inputs
  are distinct random arrays per layer (nothing can be shared), the outputs
  are all returned. Its ms/call bounds from below any step that keeps these
  products in float32 on XLA's matmul kernels: the rest of a step (LayerNorm,
  softmax, GELU, the loss, AdamW, the data) only adds to it.
  """
  n, d, h, t = batch * m.block_size, m.n_embd, m.n_head, m.block_size
  dh = d // h
  widths = ((d, 3 * d), (d, d), (d, 4 * d), (4 * d, d))
  draw = common.random_arrays()
  layers = [{"dense": [(draw(n, i), draw(i, o), draw(n, o)) for i, o in widths],
             "attn": [draw(batch, h, t, dh) for _ in range(3)]
             + [draw(batch, h, t, t), draw(batch, h, t, dh)]} for _ in range(m.n_layer)]
  head = (draw(n, d), draw(vocab, d), draw(n, vocab))

  @jax.jit
  def products(layers, head):
    out = []
    for layer in layers:
      for x, w, dy in layer["dense"]:
        out += [x @ w, dy @ w.T, x.T @ dy]
      q, k, v, p, dy = layer["attn"]
      mm = lambda eq, a, b: jnp.einsum(eq, a, b)
      out += [mm("bhtd,bhsd->bhts", q, k), mm("bhts,bhsd->bhtd", p, v),      # forward
              mm("bhtd,bhsd->bhts", dy, v), mm("bhts,bhtd->bhsd", p, dy),    # dp, dv
              mm("bhts,bhsd->bhtd", p, k), mm("bhts,bhtd->bhsd", p, q)]      # dq, dk
    x, e, dlogits = head
    out += [x @ e.T, dlogits @ e, dlogits.T @ x]
    return out

  def chunk(calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
      res = products(layers, head)
    jax.block_until_ready(res)
    return _ms_per_step(t0, calls)
  return Contender("matmul_floor", "ms/step", lambda: chunk(steps), lambda: chunk(2))


def import_torch(disabled: bool):
  """(torch module or None, torch_nanogpt module or None, reason they are absent)."""
  if disabled:
    return None, None, "disabled by --no-torch"
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    return None, None, f"not installed ({e}); `pip install -e .[bench]` adds it"
  spec = importlib.util.spec_from_file_location("torch_nanogpt", TORCH_NANOGPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return torch, module, ""


def torch_contenders(torch, tnano, m, batch: int, vocab: int, params, dtype: str,
                     steps: int, warmup: int, with_compile: bool) -> tuple[list, str]:
  """([Contender], torch device description) for nanoGPT's train step in PyTorch.

  Args:
    torch: the torch module.
    tnano: benchmarks/torch_nanogpt.py as a module.
    m: gen_jax's config.model (shapes).
    batch: sequences per step.
    vocab: vocabulary size.
    params: the flax parameters to start from (host arrays, nanoGPT's names).
    dtype: "float32", or "bfloat16" for autocast.
    steps: timed steps per round.
    warmup: untimed steps before the rounds.
    with_compile: add the torch.compile row.
  """
  cuda = torch.cuda.is_available()
  device = torch.device("cuda" if cuda else "cpu")
  where = (f"cuda ({torch.cuda.get_device_name()})" if cuda
           else f"cpu ({torch.get_num_threads()} threads)")
  sync = torch.cuda.synchronize if cuda else (lambda: None)
  amp = torch.bfloat16 if dtype == "bfloat16" else None
  gen = torch.Generator().manual_seed(0)
  tokens = torch.randint(0, vocab, (TORCH_POOL, batch, m.block_size + 1), generator=gen)
  xs = tokens[..., :-1].contiguous().to(device)     # i64[POOL, B, T]
  ys = tokens[..., 1:].contiguous().to(device)

  def contender(name: str, compiled: bool) -> Contender:
    cfg = tnano.GPTConfig(block_size=m.block_size, vocab_size=vocab, n_layer=m.n_layer,
                          n_head=m.n_head, n_embd=m.n_embd, dropout=0.0, bias=True)
    torch.manual_seed(0)
    model = tnano.GPT(cfg)
    tnano.load_flax_params(model, params)
    model = model.to(device).train()
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3, betas=(0.9, 0.99),
                                     device_type=device.type)
    forward = torch.compile(model) if compiled else model
    i = 0

    def chunk(n: int) -> float:
      nonlocal i
      t0 = time.perf_counter()
      for _ in range(n):
        j = i % TORCH_POOL
        tnano.train_step(forward, opt, xs[j], ys[j], grad_clip=1.0, amp_dtype=amp)
        i += 1
      sync()
      return _ms_per_step(t0, n)
    return Contender(name, "ms/step", lambda: chunk(steps), lambda: chunk(max(warmup, 1)))

  out = [contender("torch_eager", False)]
  if with_compile:
    out.append(contender("torch_compile", True))
  return out, where


def decode_programs(net: transformer.GPT, m) -> dict[str, Callable]:
  """{"kv_cache", "full_forward"}: jitted (params, prompt i32[B, P]) -> i32[B, block_size]."""
  head_dim, new = m.n_embd // m.n_head, m.block_size - PROMPT_LEN
  rng = jax.random.key(0)      # unused: greedy

  def kv_cache(params, prompt):
    def decode_fn(tokens, cache, pos):
      return net.apply({"params": params}, tokens, cache, pos, method="decode")
    cache = transformer.init_cache(m.n_layer, m.n_head, head_dim, prompt.shape[0], m.block_size)
    return sampling.make_sampler(decode_fn, new, greedy=True)(cache, prompt, rng)

  def full_forward(params, prompt):
    def forward_fn(tokens):
      return net.apply({"params": params}, tokens)
    return sampling.sample_full(forward_fn, prompt, new, rng, max_len=m.block_size,
                                temperature=0)
  return {"kv_cache": jax.jit(kv_cache), "full_forward": jax.jit(full_forward)}


def decode_contenders(net, m, vocab: int, params, calls: int) -> tuple[list, dict]:
  """([Contender] per decoder and batch, {batch: tokens identical}) after one checked call."""
  programs = decode_programs(net, m)
  new = m.block_size - PROMPT_LEN
  out, identical = [], {}
  for b in DECODE_BATCHES:
    prompt = jnp.asarray((np.arange(b) % vocab)[:, None], jnp.int32)      # i32[B, 1]
    first = {name: np.asarray(fn(params, prompt)) for name, fn in programs.items()}
    same = bool(np.array_equal(first["kv_cache"], first["full_forward"]))
    identical[b] = same
    if not same:
      diff = int(np.sum(first["kv_cache"] != first["full_forward"]))
      print(f"WARNING: batch {b}: kv_cache and full_forward differ in {diff} of "
            f"{first['kv_cache'].size} tokens")
    for name, fn in programs.items():
      def chunk(n: int, fn=fn, prompt=prompt, b=b) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
          tokens = fn(params, prompt)
        jax.block_until_ready(tokens)
        return n * b * new / (time.perf_counter() - t0)
      out.append(Contender(f"{name} (batch {b})", "tokens/s", lambda chunk=chunk: chunk(calls),
                           lambda chunk=chunk: chunk(1)))
  return out, identical


def flops_per_step(params, m, batch: int) -> tuple[int, float]:
  """(N, flops of one train step) by nanoGPT's `estimate_mfu`.

  N counts every parameter except the position embeddings (the tied token
  embedding once); a token costs 6 N + 12 L H Q T flops (forward and backward),
  Q = head size, T = block size; a step is B T tokens.
  """
  n = sum(int(np.size(a)) for a in jax.tree.leaves(params))
  n -= int(np.size(params["wpe"]["embedding"]))
  t, q = m.block_size, m.n_embd // m.n_head
  per_token = 6 * n + 12 * m.n_layer * m.n_head * q * t
  return n, float(per_token * t * batch)


def default_peak(device_kind: str) -> float | None:
  """Dense bf16 peak in TFLOP/s for an H100 or A100 device kind, else None."""
  for key, peak in PEAKS_TFLOPS:
    if key in device_kind:
      return peak
  return None


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=100,
                      help="timed train steps per round per contender (the trainer rounds "
                           "up to a multiple of its steps per call)")
  parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported")
  parser.add_argument("--warmup", type=int, default=10,
                      help="untimed train steps per contender before the rounds (after "
                           "compiling)")
  parser.add_argument("--decode-calls", type=int, default=5,
                      help="timed decode calls per round per decoder and batch size")
  parser.add_argument("--dtype", choices=sorted(gpt.DTYPES), default="float32",
                      help="compute dtype of both frameworks (bfloat16: mixed precision)")
  parser.add_argument("--compile", action="store_true",
                      help="add the torch.compile row (slow to compile on CPU)")
  parser.add_argument("--torch-threads", type=int, default=None,
                      help="torch.set_num_threads (default: torch's own choice)")
  parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
  parser.add_argument("--peak-tflops", type=float, default=None,
                      help="peak TFLOP/s for MFU (default: 989 on H100, 312 on A100, else no "
                           "MFU)")
  parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
  args = parser.parse_args(argv)
  if args.steps < 1 or args.rounds < 1 or args.warmup < 0 or args.decode_calls < 1:
    parser.error("--steps, --rounds and --decode-calls must be >= 1 and --warmup >= 0")
  if args.torch_threads is not None and args.torch_threads < 1:
    parser.error("--torch-threads must be >= 1")

  devices = jax.devices()
  backend, device_kind = jax.default_backend(), devices[0].device_kind
  print(f"jax {jax.__version__}: backend {backend}, {len(devices)} x {device_kind}")
  peak = args.peak_tflops if args.peak_tflops is not None else default_peak(device_kind)
  torch, tnano, torch_absent = import_torch(args.no_torch)
  notes = [f"torch: {torch_absent}"] if torch is None else []
  torch_threads = None
  if torch is None:
    print(f"torch absent: {torch_absent}. Skipping torch_eager and torch_compile.")
  else:
    if args.torch_threads is not None:
      torch.set_num_threads(args.torch_threads)
    torch_threads = torch.get_num_threads()
    how = "--torch-threads" if args.torch_threads is not None else "torch's default"
    print(f"torch {torch.__version__}: {torch_threads} threads ({how})")
  if torch is not None and not args.compile:
    notes.append("torch_compile: off (pass --compile)")

  with tempfile.TemporaryDirectory() as tmp:
    txt = os.path.join(tmp, "random_chars.txt")
    write_text(txt)
    config = make_config(txt, args.dtype)
    run = loop.setup(config, os.path.join(tmp, "workdir"))
    try:
      m, batch = config.model, config.data.batch_size
      vocab = run.spec["tokens"].cardinality
      assert vocab == len(ALPHABET), vocab
      ts0 = loop.init_or_restore(run)
      params = ts0.params["model"]
      host_params = jax.tree.map(np.array, jax.device_get(params))   # writable copies
      num_params, step_flops = flops_per_step(host_params, m, batch)
      print(f"char GPT {m.n_layer}L/{m.n_head}H/{m.n_embd}, T={m.block_size}, batch {batch}, "
            f"vocab {vocab}, {num_params / 1e6:.2f}M params (no wpe), {args.dtype}; "
            f"{step_flops / 1e9:.2f} GFLOP/step")

      k = config.steps_per_dispatch
      print(f"trainer: {k} steps per call (the experiment's steps_per_dispatch)")
      contenders = [trainer_contender("trainer", run, k, args.steps, args.warmup),
                    trainer_contender("trainer_k1", run, 1, args.steps, args.warmup),
                    matmul_floor_contender(m, batch, vocab, args.steps)]
      if torch is not None:
        extra, torch_device = torch_contenders(torch, tnano, m, batch, vocab, host_params,
                                               args.dtype, args.steps, args.warmup,
                                               args.compile)
        contenders += extra
        print(f"torch device: {torch_device}")
      net = gpt.build(m, vocab)
      decoders, identical = decode_contenders(net, m, vocab, params, args.decode_calls)
      contenders += decoders
      print("kv_cache and full_forward tokens identical: "
            + ", ".join(f"batch {b} {same}" for b, same in identical.items()))
      for note in notes:
        print(note)

      for c in list(contenders):   # compile and warm up
        t0 = time.perf_counter()
        try:
          c.warmup()
        except Exception as e:  # torch.compile needs a working C++ toolchain
          if c.name != "torch_compile":
            raise
          contenders.remove(c)
          notes.append(f"torch_compile: failed to compile ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:200] if str(e) else ''})")
          print(notes[-1])
          continue
        print(f"warmed up {c.name} in {time.perf_counter() - t0:.1f} s", flush=True)
      per_round = common.alternating_rounds({c.name: c.run for c in contenders}, args.rounds,
                                            unit="(ms/step or tokens/s)", fmt=".4g")
    finally:
      run.close()

  results = common.medians(per_round)
  eager = results.get("torch_eager")
  rows = []
  for c in contenders:
    value = results[c.name]
    train = c.unit == "ms/step"
    rows.append({
        "contender": c.name, "unit": c.unit, "value": value, "per_round": per_round[c.name],
        "torch_eager_over_this": eager / value if train and eager is not None else None,
        "mfu": step_flops / (value * 1e-3) / (peak * 1e12) if train and peak else None,
    })

  print(f"\nmedian of {args.rounds} rounds ({args.steps} train steps, {args.decode_calls} "
        f"decode calls each), char GPT {m.n_layer}L/{m.n_head}H/{m.n_embd} T={m.block_size} "
        f"batch {batch}, {args.dtype} ({backend}, {device_kind}); decode: {PROMPT_LEN}-token "
        f"prompt, {m.block_size - PROMPT_LEN} greedy new tokens\n")
  mfu_head = f" MFU (peak {peak:g} TFLOP/s) |" if peak else ""
  print(f"| contender | ms/step or tokens/s | PyTorch / gen_jax |{mfu_head}")
  print("|---|---:|---:|" + ("---:|" if peak else ""))
  for row in rows:
    ratio = row["torch_eager_over_this"]
    ratio_s = f"{ratio:.2f}" if ratio is not None else "n/a"
    value_s = (f"{row['value']:.2f} ms/step" if row["unit"] == "ms/step"
               else f"{row['value']:.0f} tokens/s")
    mfu_s = ""
    if peak:
      mfu_s = f" {row['mfu'] * 100:.2f}% |" if row["mfu"] is not None else " |"
    print(f"| {row['contender']} | {value_s} | {ratio_s} |{mfu_s}")
  speedups = {b: results[f"kv_cache (batch {b})"] / results[f"full_forward (batch {b})"]
              for b in DECODE_BATCHES}
  print()
  print("PyTorch / gen_jax: torch_eager ms/step over the row's (> 1: faster than torch_eager)")
  print("kv_cache / full_forward speed-up: "
        + ", ".join(f"batch {b} {s:.2f}x" for b, s in speedups.items()))
  if not peak:
    print("MFU: skipped (no peak known for this device; pass --peak-tflops)")

  report = common.fields(
      "gpt_char_train_step_and_decode",
      model=(f"char GPT {m.n_layer}L/{m.n_head}H/{m.n_embd}, block {m.block_size}, vocab "
             f"{vocab}, bias, dropout 0; AdamW 1e-3 (0.9, 0.99) wd 0.1, clip 1.0"),
      torch_version=torch.__version__ if torch is not None else None,
      torch_threads=torch_threads,
      dtype=args.dtype,
      batch_size=batch,
      steps=args.steps, rounds=args.rounds, warmup=args.warmup,
      decode_calls=args.decode_calls,
      trainer_steps_per_call=config.steps_per_dispatch,
      num_params_no_wpe=num_params,
      flops_per_step=step_flops,
      peak_tflops=peak,
      decode_tokens_identical={str(b): s for b, s in identical.items()},
      decode_speedup_kv_over_full={str(b): s for b, s in speedups.items()},
      rows=rows,
      ms_per_step={r["contender"]: r["value"] for r in rows if r["unit"] == "ms/step"},
      skipped=notes,
  )
  common.write_json(args.json, report)
  return report


if __name__ == "__main__":
  main()
