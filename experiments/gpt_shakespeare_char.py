"""Character-level GPT on tiny-shakespeare: nanoGPT's `shakespeare_char` recipe.

Target: validation loss 1.4697 nats/char, the baby GPT of karpathy/nanoGPT's README
  (config/train_shakespeare_char.py: 6 layers, 6 heads, 384 wide, block 256,
  batch 64, dropout 0.2, AdamW lr 1e-3 with 100 warmup steps and cosine decay
  to 1e-4 over 5,000 iterations, betas (0.9, 0.99), weight decay 0.1 on
  matrices, gradient clipping 1.0); "cpu": 1.88 for nanoGPT's CPU command
  (4 layers, 4 heads, 128 wide, block 64, batch 12, 2,000 iterations, no
  dropout). Both on nanoGPT's split: the first 90% of the text for training,
  the last 10% (111,540 characters) for validation. Not comparable with the
  tfds "validation" split (5%).
Evaluation: the mean next-character cross-entropy over the whole nanogpt_val
  split, cut into non-overlapping windows of block_size (every prediction has
  0..block_size-1 characters of context, like nanoGPT's random windows; the
  final partial window is dropped), plus the split's uniform / unigram /
  bigram baselines. nanoGPT reports the best of evaluations every 250
  iterations on 200 random batches; this reports the end of the schedule
  (earlier checkpoints: `--mode eval --step N`). The "generation" evaluator
  writes 10 continuations of each prompt (a newline, "ROMEO:"; nanoGPT's
  sample.py settings, temperature 0.8, top_k 200) to samples/generation_<step>.txt and
  reports their distinct-1/2/3 beside those of as many real validation
  windows of the same length (no published number: the real text is the
  reference). Measured, "cpu" (seed 0, 2 x 10 x 50 characters): distinct-1/2/3
  0.054 / 0.313 / 0.638 against 0.053 / 0.327 / 0.680 for the real text, val
  1.897 nats/char.

Commands (data: TFDS tiny_shakespeare via TFDS_DATA_DIR, or --config.data.download=True;
any text file: --config.data.name=txt --config.data.path=FILE.txt):
  python -m gen_jax.main --config experiments/gpt_shakespeare_char.py --workdir runs/gpt_baby
      the baby GPT, 10.7M parameters, 5,000 steps; one GPU, minutes (about 31 s
      of step time on an H100 by the stack's measurements); on 2 CPU cores
      roughly 10 s/step, so about 14 h (resumable: rerun the command)
  python -m gen_jax.main --config experiments/gpt_shakespeare_char.py:cpu --workdir runs/gpt_cpu
      nanoGPT's CPU config, 0.8M parameters, 2,000 steps; 2 CPU cores, minutes
  python -m gen_jax.main --config experiments/gpt_shakespeare_char.py:smoke --workdir /tmp/gpt
      seconds, on the Zen of Python (shipped with Python, no files); used by the tests
  Sampling from a checkpoint, with a prompt:
  python -m gen_jax.main --config experiments/gpt_shakespeare_char.py:cpu --workdir runs/gpt_cpu \\
      --mode sample --config.sample.prompt="ROMEO:" --config.sample.num_tokens=50
Variants: "" (the baby GPT), "cpu" (nanoGPT's CPU config), "smoke".
"""
from gen_jax import config_lib
from gen_jax.models import gpt

VARIANTS = ("cpu", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = char_config("gpt", steps=5000, block_size=256, batch_size=64)
  c.model = gpt.default_model()
  c.sample = gpt.default_sample()
  c.evals.val.batch_size = 32
  c.reference.update(metric="val/nll", value=1.4697,
                     source="karpathy/nanoGPT README, shakespeare_char baby GPT",
                     estimator="exact", also=("baselines/bigram",))
  if variant == "cpu":
    c.model.update(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
    c.data.update(block_size=64, batch_size=12)
    steps = 2000
    c.optim.model.decay_steps = steps
    c.total_steps = steps
    c.ckpt_every_steps = 500
    c.steps_per_dispatch = 10     # a lax.scan of 10 steps per call: ~1.2x faster on 2 CPU cores
    c.evals.val.batch_size = 256
    c.sample.num_tokens = 50
    c.reference.update(value=1.88, source="karpathy/nanoGPT README, CPU command")
  if variant == "smoke":
    smoke(c)
    c.model.update(block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
    c.sample.update(prompt="Beautiful", num_tokens=6)
  c.evals.generation = dict(type="text_generation", prompts=("\n", "ROMEO:"), num_samples=10,
                            max_new_tokens=c.sample.num_tokens, temperature=0.8, top_k=200,
                            batch_size=c.evals.val.batch_size)
  if variant == "smoke":
    c.evals.generation.update(prompts=("Beautiful",), num_samples=4)   # one sampler compile
  return c


def char_config(family: str, steps: int, block_size: int, batch_size: int):
  """Tiny-shakespeare characters on nanoGPT's split with nanoGPT's optimizer, for `family`.

  Shared by the character-level transformer experiments; evaluates the whole
  validation split and its n-gram baselines.
  """
  c = config_lib.base()
  c.family = family
  c.data.update(name="tiny_shakespeare", variant="tokens", train_split="nanogpt_train",
                eval_split="nanogpt_val", block_size=block_size, batch_size=batch_size,
                description="tiny_shakespeare (nanoGPT split)")
  c.optim.model = gpt.default_optim(steps)
  c.total_steps = steps
  c.log_every_steps = 250
  c.ckpt_every_steps = 1000
  c.num_samples = 4
  c.evals = dict(val=dict(type="likelihood", batch_size=256, num_examples=0),
                 baselines=dict(type="text_baselines"))
  return c


def smoke(c) -> None:
  """Seconds-long runs on the Zen of Python (shipped with Python, no files)."""
  c.data.update(name="zen", block_size=16, batch_size=8, description="")
  c.optim.model.update(warmup_steps=2, decay_steps=20)
  c.total_steps, c.log_every_steps, c.ckpt_every_steps = 20, 10, 10
  c.evals.val.batch_size = 8
  c.reference.value = 0.0
