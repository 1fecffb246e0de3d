"""DCGAN (non-saturating loss) on MNIST 28x28, scored offline with FD_mnist_cnn and KID.

Target:   no published FD in this feature space exists; the target is a
  stated, reproducible FD_mnist_cnn / KID_mnist_cnn at a stated number of
  steps, next to the real-data floor (training digits vs the test set at the
  same n) that the evaluator prints. Values are comparable only between runs
  with the same classifier checkpoint and sample sizes (10,000 generated
  samples vs the 10,000 test digits). evals.balance adds the class balance
  (bias) of the samples in the same classifier's predicted classes: KL to
  uniform in nats, next to the test digits' own value.
Architecture: DCGAN (Radford et al. 2016) at 28x28: z(100) -> 7x7x2ch ->
  BN-ReLU-up(ch) -> BN-ReLU-up(1) -> tanh; D: down(ch) lReLU, down(2ch) BN
  lReLU, dense. Adam(2e-4, b1=0.5), batch 64; the stride-2 layers "mixed" (same
  outputs as ConvTranspose and strided convs, faster on CPU; the committed runs
  used "subpixel" / "strided", equal to float rounding).
Needs: the MNIST classifier (experiments/classifier_mnist.py) trained into
  runs/classifier_mnist; the evaluator stops with the command if it is missing.
Commands (data: TFDS mnist via TFDS_DATA_DIR):
  python -m gen_jax.main --config experiments/dcgan_mnist.py --workdir runs/dcgan_mnist
      ch=64, 30,000 steps; one GPU, minutes (not run here)
  python -m gen_jax.main --config experiments/dcgan_mnist.py:cpu --workdir runs/dcgan_mnist_cpu
      the CPU schedule: ch=32 and 3,000 steps; 2 shared CPU cores, see docs/runs/
  python -m gen_jax.main --config experiments/dcgan_mnist.py:smoke --workdir /tmp/dcgan_smoke
      seconds on scikit-learn's embedded 8x8 digits (trains a tiny digits
      classifier first, into the temp folder); used by the tests
"""
import os
import tempfile

from gen_jax import config_lib, optim
from gen_jax.models import gan

VARIANTS = ("cpu", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = mnist_gan_config(variant)
  c.model.update(arch="dcgan", loss="nonsaturating", d_norm="batch")
  # Class balance (bias) of the samples, with the sample-quality classifier.
  q = c.evals.quality
  c.evals.balance = dict(
      type="class_balance", classifier_config=q.classifier_config,
      classifier_workdir=q.classifier_workdir, classifier_name=q.classifier_name,
      train_missing=q.train_missing, num_samples=q.num_samples, real_split=q.real_split,
      num_real=q.num_real, batch_size=q.batch_size)
  return c


def mnist_gan_config(variant: str, cpu_steps: int = 3000, gpu_steps: int = 30000):
  """MNIST GAN setup shared by dcgan_mnist, wgan_gp_mnist and sngan_mnist."""
  c = config_lib.base()
  c.family = "gan"
  c.model = gan.default_model(z_dim=100, g_ch=64, d_ch=64)
  c.data.update(name="mnist", variant="grayscale", batch_size=64)
  c.optim.d = optim.adam(2e-4, b1=0.5)
  c.optim.g = optim.adam(2e-4, b1=0.5)
  c.total_steps = gpu_steps
  # One step per dispatch: XLA:CPU runs convolutions inside lax.scan several
  # times slower (see classifier_mnist.py); on accelerators raise it.
  c.steps_per_dispatch = 1
  c.log_every_steps = 100
  c.ckpt_every_steps = 500
  c.num_samples = 64
  c.reference.update(also=("quality/KID_mnist_cnn", "quality/FD_mnist_cnn_train_vs_ref"))
  c.evals = dict(
      quality=dict(type="sample_quality", classifier_config="experiments/classifier_mnist.py",
                   classifier_workdir="runs/classifier_mnist", classifier_name="mnist_cnn",
                   train_missing=False, num_samples=10000, num_real=0, real_split="test",
                   kid_subsets=100, kid_subset_size=1000, score_splits=10, batch_size=1000),
  )
  if variant == "cpu":
    c.model.update(g_ch=32, d_ch=32)
    c.total_steps = cpu_steps
  if variant == "smoke":
    c.data.update(name="digits", batch_size=50)
    c.model.update(z_dim=16, g_ch=8, d_ch=8)
    c.total_steps = 10   # one step per dispatch, as the CPU variant
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 16
    c.evals.quality.update(
        classifier_config="experiments/classifier_mnist.py:smoke",
        classifier_workdir=os.path.join(tempfile.gettempdir(), "gen_jax_classifier_digits_smoke"),
        classifier_name="digits_cnn", train_missing=True, num_samples=300, kid_subsets=5,
        kid_subset_size=100, score_splits=2, batch_size=300)
  return c
