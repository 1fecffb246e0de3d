"""MADE on statically binarized MNIST (TFDS binarized_mnist, Larochelle's 50k/10k/10k split).

Reproduces: test NLL 88.04 nats per image (MADE, one hidden layer of 500,
  32 masks; Germain, Gregor, Murray & Larochelle, ICML 2015, Table 6), with
  the 32-mask ensemble scored as the mixture logsumexp_k log p_k(x) - log 32
  (exact; never an average of logits). Target: within 1 nat. The `cpu`
  variant is the one-mask 1x500 model with one fixed random ordering, whose
  converged loss is karpathy/pytorch-made's sanity point, 94.5 nats (the first
  point of Germain et al.'s Figure 2).
Model: MADE, ReLU, hidden degrees drawn as in Germain et al. (mask seed 0),
  each mask with its own random input ordering (the raster order trains far
  slower: its low-degree units see only blank rows); with 32 masks each
  training step draws one mask (ordering and connectivity). Adam instead of Adagrad;
  the `valid_ll` evaluation (validation split) is there to pick a checkpoint
  (the paper early-stops on it).

Commands (data: TFDS binarized_mnist via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/made_binarized_mnist.py \
      --workdir runs/made_bmnist
      default: 1 x 500, 32 masks, batch 100, 200 epochs (100,000 steps); one GPU,
      or about 30 min on 2 CPU cores (~10 ms per step there)
  python -m gen_jax.main --config experiments/made_binarized_mnist.py:cpu \
      --workdir runs/made_bmnist_cpu
      1 x 500, one mask (one random order), 100 epochs (50,000 steps); 2 CPU
      cores, about 10 minutes
  python -m gen_jax.main --config experiments/made_binarized_mnist.py:smoke \
      --workdir /tmp/made_smoke
      seconds on embedded digits (8x8, dynamically binarized); used by the tests
Hardware: as above (GPU or CPU for the default, CPU for `cpu` and `smoke`).
"""
from gen_jax import config_lib, optim
from gen_jax.models import autoregressive

VARIANTS = ("cpu", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "autoregressive"
  c.model = autoregressive.default_model(arch="made", hidden=(500,), order="random",
                                         num_masks=32)
  c.data.update(name="binarized_mnist", variant="binarized_static", batch_size=100,
                eval_split="test")
  steps = 100_000
  if variant == "cpu":
    c.model.num_masks = 1
    steps = 50_000
  c.optim.model = optim.adam(1e-3, schedule="cosine", warmup_steps=100, decay_steps=steps,
                             final_lr_frac=0.05)
  c.total_steps = steps
  c.steps_per_dispatch = 100
  c.log_every_steps = 500
  c.ckpt_every_steps = 5000 if variant == "cpu" else 10_000
  c.keep_checkpoints = 10
  c.num_samples = 64
  c.evals = dict(test_ll=dict(type="likelihood", batch_size=500, num_examples=0),
                 valid_ll=dict(type="likelihood", split="validation", batch_size=500,
                               num_examples=0))
  c.reference.update(metric="test_ll/nll", value=88.04,
                     source="Germain et al. 2015, Table 6 (MADE 1 hidden layer, 32 masks)",
                     also=("valid_ll/nll",))
  if variant == "cpu":
    c.reference.update(value=94.5, source="karpathy/pytorch-made README (1 x 500, one mask "
                                          "and order; Germain et al. 2015, Figure 2)")
  if variant == "smoke":
    c.reference.value = 0.0    # digits, seconds: nothing to compare with
    c.model.update(hidden=(32,), num_masks=4)
    c.data.update(name="digits", variant="binarized_dynamic", batch_size=50)
    c.optim.model.update(warmup_steps=2, decay_steps=20)
    c.total_steps, c.steps_per_dispatch = 20, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 16
    c.evals = dict(test_ll=dict(type="likelihood", batch_size=100, num_examples=100))
  return c
