"""T5-style span corruption with an encoder-decoder on tiny-shakespeare characters.

Target: no published number for this data (owned): the span-corruption target
  cross-entropy on nanogpt_val, nats per target token (sentinels included),
  falling well below the character baselines as the model learns to fill
  spans from both sides.
Recipe: T5's span corruption (noise density 0.15, mean span length 3) on
  windows of 65 characters: 10 noise characters in 3 spans, so inputs are 58
  tokens and targets 14 (3 sentinel + span pieces and a closing sentinel);
  encoder and decoder of 4 blocks x 128 (the GPT CPU config's blocks, learned
  absolute positions instead of T5's relative bias), AdamW as nanoGPT's CPU
  command, batch 32.
Evaluation: teacher-forced target cross-entropy (and greedy exact match of
  whole target sequences) on every window of nanogpt_val, with the
  corruption fixed by the evaluation key.

Commands (data: TFDS tiny_shakespeare via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/t5_shakespeare_char.py --workdir runs/t5_char
      4 + 4 layers x 128, 4,000 steps; 2 CPU cores, minutes
  python -m gen_jax.main --config experiments/t5_shakespeare_char.py:smoke --workdir /tmp/t5
      seconds, on the Zen of Python; used by the tests
Variants: "" (default), "smoke".
"""
from gen_jax import config_lib
from gen_jax.models import seq2seq

VARIANTS = ("smoke",)


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  char = config_lib.sibling(__file__, "gpt_shakespeare_char")
  c = char.char_config("seq2seq", steps=4000, block_size=64, batch_size=32)
  c.model = seq2seq.default_model(task="span", max_src_len=64)
  c.sample = seq2seq.default_sample(prompt="To be, or not to be, that is the ")
  c.reference.update(metric="val/nll", value=0.0, source="own target (no published number)",
                     estimator="exact", also=("baselines/bigram",))
  if variant == "smoke":
    char.smoke(c)
    c.data.block_size = 15
    c.model.update(n_layer=1, n_dec_layer=1, n_head=2, n_embd=16, max_src_len=24)
    c.sample.update(prompt="Flat is")
  return c
