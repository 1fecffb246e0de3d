"""DCGAN on Stacked-MNIST (three MNIST digits as RGB channels): 1,000-mode coverage.

Target:   ~1,000 modes covered and KL(p_hat || uniform) ~0.08 nats from 26,000
  samples: PacGAN2 with the DCGAN architecture, 1000.0 modes, KL 0.079
  (Lin et al. 2018, PacGAN, Table 3); DCGAN alone: 99.0 modes, KL 3.40 (VEEGAN's
  Table 2 setting) or 1000 / 0.14 with PacGAN's larger net. Each channel is
  labelled by the MNIST classifier (runs/classifier_mnist, >= 99.3% test
  accuracy), so mis-labelled channels count as other modes.
Architecture: DCGAN at 28x28x3 (z 100, G 7x7x2ch -> 14 -> 28, D 2 stride-2
  convs with BatchNorm), non-saturating loss, Adam(2e-4, b1=0.5), batch 64.
Needs: runs/classifier_mnist (experiments/classifier_mnist.py).
Commands (data: TFDS mnist via TFDS_DATA_DIR; the stacks are built from it):
  python -m gen_jax.main --config experiments/stacked_mnist.py --workdir runs/stacked_mnist
      ch=64, 30,000 steps; one GPU (not run here)
  python -m gen_jax.main --config experiments/stacked_mnist.py:cpu --workdir runs/stacked_mnist_cpu
      the CPU schedule: ch=32, 3,000 steps; 2 CPU cores
  python -m gen_jax.main --config experiments/stacked_mnist.py:pacgan2_cpu \
      --workdir runs/stacked_mnist_pacgan2_cpu
      PacGAN2 (D judges pairs of samples, concatenated as 6 channels), ch=32,
      40,000 steps; keeps the last ten 2,000-step checkpoints so coverage can
      be evaluated along the run (--mode eval --step N); 2 CPU cores
  python -m gen_jax.main --config experiments/stacked_mnist.py:smoke --workdir /tmp/stacked_smoke
      seconds on stacked scikit-learn digits; used by the tests
"""
import os
import tempfile

from gen_jax import config_lib, optim
from gen_jax.models import gan

VARIANTS = ("cpu", "pacgan2_cpu", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "gan"
  c.model = gan.default_model(arch="dcgan", loss="nonsaturating", z_dim=100, g_ch=64, d_ch=64,
                              d_norm="batch")
  c.data.update(name="stacked_mnist", variant="grayscale", batch_size=64)
  c.optim.d = optim.adam(2e-4, b1=0.5)
  c.optim.g = optim.adam(2e-4, b1=0.5)
  c.total_steps = 30000
  c.steps_per_dispatch = 1          # convolutions in lax.scan are slow on XLA:CPU
  c.log_every_steps = 100
  c.ckpt_every_steps = 500
  c.reference.update(metric="modes/modes_covered", value=1000.0,
                     source="PacGAN (Lin et al. 2018), Table 3, PacGAN2 (KL 0.079)")
  c.evals = dict(modes=dict(type="stacked_mnist_modes",
                            classifier_config="experiments/classifier_mnist.py",
                            classifier_workdir="runs/classifier_mnist", train_missing=False,
                            num_samples=26000, batch_size=1000))
  if variant == "cpu":
    c.model.update(g_ch=32, d_ch=32)
    c.total_steps = 3000
  if variant == "pacgan2_cpu":
    c.model.update(g_ch=32, d_ch=32, pack=2)
    c.total_steps = 40000
    c.ckpt_every_steps, c.keep_checkpoints = 2000, 10
  if variant == "smoke":
    c.data.update(name="stacked_digits", batch_size=50)
    c.model.update(z_dim=16, g_ch=8, d_ch=8)
    c.total_steps, c.steps_per_dispatch = 10, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 16
    c.evals.modes.update(
        classifier_config="experiments/classifier_mnist.py:smoke",
        classifier_workdir=os.path.join(tempfile.gettempdir(), "gen_jax_classifier_digits_smoke"),
        train_missing=True, num_samples=500, batch_size=250)
  return c
