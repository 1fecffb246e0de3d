"""WGAN-GP (Gulrajani et al. 2017) on MNIST 28x28 with a DCGAN generator, scored with FD_mnist_cnn.

Target:   a stated FD_mnist_cnn / KID_mnist_cnn at a stated number of
  generator steps (no published number exists in this feature space); the
  evaluator prints the real-data floor next to it. 10,000 samples vs the
  10,000 test digits.
Setup: Wasserstein loss, gradient penalty lambda=10, 5 critic updates per
  generator update, Adam(1e-4, b1=0.5, b2=0.9) as in the paper; critic without
  BatchNorm (the penalty needs per-example outputs); batch 64.
Needs: runs/classifier_mnist (experiments/classifier_mnist.py).
Commands (data: TFDS mnist via TFDS_DATA_DIR):
  python -m gen_jax.main --config experiments/wgan_gp_mnist.py --workdir runs/wgan_gp_mnist
      ch=64, 20,000 generator steps; one GPU (not run here)
  python -m gen_jax.main --config experiments/wgan_gp_mnist.py:cpu --workdir runs/wgan_gp_mnist_cpu
      the CPU schedule: ch=32, 1,000 generator steps (5,000 critic steps); 2 CPU cores
  python -m gen_jax.main --config experiments/wgan_gp_mnist.py:smoke --workdir /tmp/wgan_smoke
      seconds on embedded digits; used by the tests
"""
from gen_jax import config_lib, optim

dcgan_mnist = config_lib.sibling(__file__, "dcgan_mnist")

VARIANTS = ("cpu", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = dcgan_mnist.mnist_gan_config(variant, cpu_steps=1000, gpu_steps=20000)
  c.model.update(arch="dcgan", loss="wasserstein", gp_weight=10.0, n_critic=5, d_norm="none")
  c.optim.d = optim.adam(1e-4, b1=0.5, b2=0.9)
  c.optim.g = optim.adam(1e-4, b1=0.5, b2=0.9)
  return c
