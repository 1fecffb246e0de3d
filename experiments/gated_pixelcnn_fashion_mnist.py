"""Gated PixelCNN on 8-bit Fashion-MNIST (TFDS fashion_mnist), test bits/dim with a 256-way softmax.

Target: no published Gated PixelCNN number exists for Fashion-MNIST (van den
  Oord et al. 2016b report CIFAR-10, 3.03 bits/dim, and ImageNet); the run
  reports the exact test NLL (nats per image) and bits/dim = nll / (784 ln 2)
  on the discrete 8-bit scale, to compare across this project's families.
Model: Gated PixelCNN (van den Oord et al. 2016b): vertical stack over the
  rows above, horizontal stack over the row to the left, tanh-sigmoid gates,
  the down-shifted vertical stack fed into the horizontal one (no blind
  spot), residual connections in the horizontal stack; 7x7 first layer, 3x3
  after; head ReLU-1x1-ReLU-1x1 to 256 logits per pixel. Variant `cond`
  makes it class-conditional p(x | y) (its test NLL is then the marginal under
  a uniform class prior, plus nll_given_y).

Commands (data: TFDS fashion_mnist via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/gated_pixelcnn_fashion_mnist.py \
      --workdir runs/gated_fmnist
      default: 15 gated layers x 128 features, batch 64, 30 epochs (28,000
      steps), Adam 1e-3 cosine; one GPU (not run here)
  python -m gen_jax.main --config experiments/gated_pixelcnn_fashion_mnist.py:cpu \
      --workdir runs/gated_fmnist_cpu
      4 layers x 32 features, batch 32, 2,000 steps; 2 CPU cores
  python -m gen_jax.main --config experiments/gated_pixelcnn_fashion_mnist.py:cond \
      --workdir runs/gated_fmnist_cond
      the default, class-conditional (data.labels); one GPU
  python -m gen_jax.main --config experiments/gated_pixelcnn_fashion_mnist.py:smoke \
      --workdir /tmp/gated_smoke
      seconds on embedded digits (8x8, 17 gray levels as 8-bit); used by the tests
Hardware: as above (GPU for the default and `cond`, CPU for `cpu` and `smoke`).
"""
from gen_jax import config_lib, optim
from gen_jax.models import autoregressive

VARIANTS = ("cpu", "cond", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "autoregressive"
  c.model = autoregressive.default_model(arch="gated_pixelcnn", likelihood="categorical256",
                                         features=128, layers=15, first_kernel=7, kernel=3,
                                         out_hidden=256)
  c.data.update(name="fashion_mnist", variant="grayscale", batch_size=64, eval_split="test")
  steps = 28_000
  if variant == "cpu":
    c.model.update(features=32, layers=4, out_hidden=64)
    c.data.batch_size, steps = 32, 2_000
  if variant == "cond":
    c.model.num_classes = 10
    c.data.labels = True
  c.optim.model = optim.adam(1e-3, schedule="cosine", warmup_steps=100, decay_steps=steps,
                             final_lr_frac=0.05, grad_clip_norm=1000.0)
  c.total_steps = steps
  # One step per dispatch: XLA:CPU runs convolutions inside lax.scan about 10x
  # slower (2.5 against 0.25 steps/s for the `cpu` PixelCNN); on accelerators raise it.
  c.steps_per_dispatch = 1
  c.log_every_steps = 500
  c.ckpt_every_steps = 1000
  c.num_samples = 64
  c.evals = dict(test_ll=dict(type="likelihood", batch_size=200, num_examples=0))
  if variant == "smoke":
    c.model.update(features=4, layers=2, first_kernel=3, out_hidden=8)
    c.data.update(name="digits", batch_size=32)
    c.optim.model.update(warmup_steps=2, decay_steps=10)
    c.total_steps, c.steps_per_dispatch = 10, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 16
    c.evals = dict(test_ll=dict(type="likelihood", batch_size=64, num_examples=64))
  return c
