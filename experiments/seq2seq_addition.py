"""Encoder-decoder sanity task: "a+b=" -> the digits of a+b, generated from a seed (no data).

Target: 100% exact match of greedy, KV-cached decoding on the 1,000 test sums
  (pairs never seen in training, nor their commuted b+a), as Flax's seq2seq
  example reaches accuracy 1.0 on addition (examples/seq2seq README, an LSTM;
  here the transformer encoder-decoder).
Data: 3-digit operands, inputs "a+b=" right-padded with spaces (8 tokens),
  targets the zero-padded 4-digit sum; 100,000 training draws, 1,000 test.

Commands:
  python -m gen_jax.main --config experiments/seq2seq_addition.py --workdir runs/seq2seq_addition
      2 + 2 layers x 128, 8,000 steps of batch 128; 2 CPU cores, about 10 minutes
      (2 + 2 layers x 64 for 3,000 steps reached 86% exact match)
  python -m gen_jax.main --config experiments/seq2seq_addition.py:smoke --workdir /tmp/add
      seconds; used by the tests
Variants: "" (default), "smoke".
"""
from gen_jax import config_lib
from gen_jax.data import arith
from gen_jax.models import gpt, seq2seq

VARIANTS = ("smoke",)


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "seq2seq"
  c.model = seq2seq.default_model(task="pairs", n_layer=2, n_dec_layer=2, n_head=4, n_embd=128,
                                  pad_id=arith.PAD_ID)
  c.sample = seq2seq.default_sample(prompt="123+877=")
  c.data.update(name="addition", variant="tokens", batch_size=128,
                options=dict(digits=3, num_train=100_000, num_test=1_000, seed=0))
  steps = 8000
  c.optim.model = gpt.default_optim(steps, weight_decay=0.01)
  c.total_steps = steps
  c.log_every_steps = 250
  c.ckpt_every_steps = 1000
  c.num_samples = 4
  c.reference.update(metric="test/exact_match", value=1.0,
                     source="Flax examples/seq2seq README (accuracy 1.0 on addition)")
  c.evals = dict(test=dict(type="likelihood", batch_size=500, num_examples=0))
  if variant == "smoke":
    c.data.update(batch_size=16)
    c.data.options.update(digits=2, num_train=200, num_test=40)
    c.model.update(n_layer=1, n_dec_layer=1, n_head=2, n_embd=16)
    c.sample.update(prompt="12+34=")
    c.optim.model.update(warmup_steps=2, decay_steps=20)
    c.total_steps, c.log_every_steps, c.ckpt_every_steps = 20, 10, 10
    c.evals.test.batch_size = 20
    c.reference.value = 0.0
  return c
