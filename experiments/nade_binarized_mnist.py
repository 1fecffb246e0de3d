"""NADE on statically binarized MNIST (TFDS binarized_mnist, Larochelle's 50k/10k/10k split).

Reproduces: test NLL 88.86 nats per image (NADE, 500 sigmoid hidden units,
  fixed pixel order; Larochelle & Murray, AISTATS 2011). Target: within 1 nat
  at the default schedule. Exact likelihood (no bound, no estimate).
Model: NADE, H = 500, natural (raster) order, weights shared across the 784
  conditionals; O(DH) per image by a scan along the ordering. Adam instead of
  the paper's SGD; no early stopping in the run itself: the `valid_ll`
  evaluation (validation split) is there to pick a checkpoint.

Commands (data: TFDS binarized_mnist via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/nade_binarized_mnist.py \
      --workdir runs/nade_bmnist
      default: batch 100, 100 epochs (50,000 steps), Adam 1e-3 with cosine decay;
      one GPU, or about 2 h on 2 CPU cores (0.12-0.15 s per step there)
  python -m gen_jax.main --config experiments/nade_binarized_mnist.py:cpu \
      --workdir runs/nade_bmnist_cpu
      the same model for 16 epochs (8,000 steps), Adam 2e-3 with cosine decay
      over them; 2 CPU cores, about 20 minutes (see README for the measured NLL)
  python -m gen_jax.main --config experiments/nade_binarized_mnist.py:smoke \
      --workdir /tmp/nade_smoke
      seconds on embedded digits (8x8, dynamically binarized); used by the tests
Hardware: as above (GPU for the default, CPU for `cpu` and `smoke`).
"""
from gen_jax import config_lib, optim
from gen_jax.models import autoregressive

VARIANTS = ("cpu", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "autoregressive"
  c.model = autoregressive.default_model(arch="nade", hidden=(500,), order="natural")
  c.data.update(name="binarized_mnist", variant="binarized_static", batch_size=100,
                eval_split="test")
  steps = 8_000 if variant == "cpu" else 50_000
  c.optim.model = optim.adam(2e-3 if variant == "cpu" else 1e-3, schedule="cosine",
                             warmup_steps=100, decay_steps=steps, final_lr_frac=0.05)
  c.total_steps = steps
  c.steps_per_dispatch = 50
  c.log_every_steps = 250
  c.ckpt_every_steps = 1000 if variant == "cpu" else 5000
  c.keep_checkpoints = 10
  c.num_samples = 64
  c.evals = dict(test_ll=dict(type="likelihood", batch_size=500, num_examples=0),
                 valid_ll=dict(type="likelihood", split="validation", batch_size=500,
                               num_examples=0))
  c.reference.update(metric="test_ll/nll", value=88.86,
                     source="Larochelle & Murray 2011 (NADE, 500 hidden, fixed order)",
                     also=("valid_ll/nll",))
  if variant == "smoke":
    c.reference.value = 0.0    # digits, seconds: nothing to compare with
    c.model.hidden = (16,)
    c.data.update(name="digits", variant="binarized_dynamic", batch_size=50)
    c.optim.model.update(warmup_steps=2, decay_steps=20)
    c.total_steps, c.steps_per_dispatch = 20, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 16
    c.evals = dict(test_ll=dict(type="likelihood", batch_size=100, num_examples=100))
  return c
