"""Masked-LM encoder (BERT-style) on tiny-shakespeare characters, nanoGPT's split.

Target: no published number for this data; the project's own targets
  (owned, not reproduced): masked-token cross-entropy well below the add-one
  bigram's 2.482 nats/char and below the causal GPT's per-character loss of
  the same size and schedule (gpt_shakespeare_char.py:cpu), since every masked
  character sees context on both sides.
Recipe: 15% of positions selected, 80/10/10 [MASK]/random/kept; loss on the
  selected positions only; the GPT's 4-layer, 4-head, 128-wide blocks without
  the causal mask, block 64, AdamW as nanoGPT's CPU command.
Evaluation: masked-token cross-entropy and accuracy over every window of
  nanogpt_val (masks fixed by the evaluation key), weighted per masked token.

Commands (data: TFDS tiny_shakespeare via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/mlm_shakespeare_char.py --workdir runs/mlm_char
      4 layers x 128, batch 32, 4,000 steps; 2 CPU cores, minutes
  python -m gen_jax.main --config experiments/mlm_shakespeare_char.py:smoke --workdir /tmp/mlm
      seconds, on the Zen of Python; used by the tests
Variants: "" (default), "smoke".
"""
from gen_jax import config_lib
from gen_jax.models import gpt, mlm

VARIANTS = ("smoke",)


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  char = config_lib.sibling(__file__, "gpt_shakespeare_char")
  c = char.char_config("mlm", steps=4000, block_size=64, batch_size=32)
  c.model = gpt.default_model(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
  c.model.mask_rate = 0.15
  c.sample = mlm.default_sample(prompt="ROMEO:", num_tokens=64, steps=16)
  c.reference.update(metric="val/nll", value=2.482,
                     source="own target: below the add-one bigram (nats/char)",
                     estimator="exact", also=("val/accuracy", "baselines/bigram"))
  if variant == "smoke":
    char.smoke(c)
    c.model.update(block_size=16, n_layer=1, n_head=2, n_embd=16)
    c.sample.update(prompt="Simple", num_tokens=12, steps=3)
  return c
