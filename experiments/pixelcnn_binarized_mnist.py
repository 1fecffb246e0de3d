"""PixelCNN on statically binarized MNIST (TFDS binarized_mnist, Larochelle's 50k/10k/10k split).

Reproduces: test NLL 81.30 nats per image (PixelCNN; van den Oord,
  Kalchbrenner & Kavukcuoglu 2016a, "Pixel Recurrent Neural Networks",
  Table 4). Target: the default (paper-sized) run is GPU-only and not run
  here; the `cpu` variant reports what a small PixelCNN reaches on 2 cores
  (a 5-layer, 32-filter net is expected near 88-92). Exact likelihood.
Model: 7x7 mask-A conv, residual blocks (ReLU, 1x1, ReLU, 3x3 mask B, ReLU,
  1x1; residual stream `features`, inner width features / 2), then ReLU,
  1x1 (out_hidden), ReLU, 1x1 to one Bernoulli logit per pixel. The stacked
  causal kernels leave the PixelCNN's blind spot (see the gated PixelCNN).
  Sampling runs the cached per-pixel loop (one forward pass of work per image).

Commands (data: TFDS binarized_mnist via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/pixelcnn_binarized_mnist.py \
      --workdir runs/pixelcnn_bmnist
      default: 15 residual blocks x 128 features, batch 64, 50 epochs (39,000
      steps), Adam 1e-3 cosine; one GPU (not run here; ~1.7 GFLOP per image forward)
  python -m gen_jax.main --config experiments/pixelcnn_binarized_mnist.py:cpu \
      --workdir runs/pixelcnn_bmnist_cpu
      5 blocks x 32 features, batch 50, 4 epochs (4,000 steps); 2 CPU cores,
      about 30 min (2.5 steps/s)
  python -m gen_jax.main --config experiments/pixelcnn_binarized_mnist.py:smoke \
      --workdir /tmp/pixelcnn_smoke
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
  c.model = autoregressive.default_model(arch="pixelcnn", features=128, layers=15,
                                         first_kernel=7, kernel=3, out_hidden=128)
  c.data.update(name="binarized_mnist", variant="binarized_static", batch_size=64,
                eval_split="test")
  steps = 39_000
  if variant == "cpu":
    c.model.update(features=32, layers=5, out_hidden=32)
    c.data.batch_size, steps = 50, 4_000
  c.optim.model = optim.adam(1e-3, schedule="cosine", warmup_steps=100, decay_steps=steps,
                             final_lr_frac=0.05)
  c.total_steps = steps
  # One step per dispatch: XLA:CPU runs convolutions inside lax.scan about 10x
  # slower (2.5 against 0.25 steps/s for the `cpu` PixelCNN); on accelerators raise it.
  c.steps_per_dispatch = 1
  c.log_every_steps = 500
  c.ckpt_every_steps = 1000
  c.num_samples = 64
  c.evals = dict(test_ll=dict(type="likelihood", batch_size=200, num_examples=0),
                 valid_ll=dict(type="likelihood", split="validation", batch_size=200,
                               num_examples=0))
  c.reference.update(metric="test_ll/nll", value=81.30,
                     source="van den Oord et al. 2016a, Table 4 (PixelCNN)",
                     also=("valid_ll/nll",))
  if variant == "cpu":
    c.reference.value = 0.0    # a small net: no paper number to compare with
  if variant == "smoke":
    c.reference.value = 0.0    # digits, seconds: nothing to compare with
    c.model.update(features=8, layers=1, first_kernel=3, out_hidden=8)
    c.data.update(name="digits", variant="binarized_dynamic", batch_size=32)
    c.optim.model.update(warmup_steps=2, decay_steps=10)
    c.total_steps, c.steps_per_dispatch = 10, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 16
    c.evals = dict(test_ll=dict(type="likelihood", batch_size=64, num_examples=64))
  return c
