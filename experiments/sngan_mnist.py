"""SN-GAN "standard CNN" (Miyato et al. 2018) on MNIST 28x28, hinge loss, scored with FD_mnist_cnn.

Target:   a stated FD_mnist_cnn / KID_mnist_cnn at a stated number of steps
  (no published number exists in this feature space); the evaluator prints
  the real-data floor next to it. 10,000 samples vs the 10,000 test digits.
Setup: the paper's standard CNN (Table 3) with two stride-2 stages for 28x28
  (G: 7x7x8ch -> 14 -> 28, D: 3x3/4x4-stride-2 pairs, spectral normalization
  on every D layer, one power iteration per update), hinge loss, n_dis=1,
  Adam(2e-4, b1=0.5, b2=0.999), batch 64.
Needs: runs/classifier_mnist (experiments/classifier_mnist.py).
Commands (data: TFDS mnist via TFDS_DATA_DIR):
  python -m gen_jax.main --config experiments/sngan_mnist.py --workdir runs/sngan_mnist
      ch=64, 30,000 steps; one GPU (not run here)
  python -m gen_jax.main --config experiments/sngan_mnist.py:cpu --workdir runs/sngan_mnist_cpu
      the CPU schedule: ch=8 (G 64-32-16, D 8-16-32), 1,000 steps; 2 CPU cores
  python -m gen_jax.main --config experiments/sngan_mnist.py:smoke --workdir /tmp/sngan_smoke
      seconds on embedded digits; used by the tests
"""
from gen_jax import config_lib

dcgan_mnist = config_lib.sibling(__file__, "dcgan_mnist")

VARIANTS = ("cpu", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = dcgan_mnist.mnist_gan_config(variant, cpu_steps=1000)
  c.model.update(arch="sngan_cnn", loss="hinge", spectral_norm=True, n_critic=1, d_norm="none")
  c.optim.d.update(b2=0.999)
  c.optim.g.update(b2=0.999)
  if variant == "cpu":
    c.model.update(g_ch=8, d_ch=8)
    c.ckpt_every_steps = 250
  if variant == "smoke":
    c.model.update(g_ch=4, d_ch=4)
  return c
