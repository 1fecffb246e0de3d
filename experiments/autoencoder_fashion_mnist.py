"""Denoising and super-resolution autoencoders on Fashion-MNIST (the conv model of
autoencoder_mnist.py).

Target:   no canonical Fashion-MNIST denoising or super-resolution number
  exists; the restoration targets are measured against the trivial
  baselines on the 10,000 test images (8-bit as x / 255): the noisy input
  (Gaussian sigma 0.1 to 0.5) for denoising and the bicubic upsampling of
  the downsampled image (x2, x4) for super-resolution. This run reports, per
  pixel on [0, 1], test/recon_mse_corrupted (the model's output for the
  corrupted input vs the clean image) beside test/corrupted_input_mse (the
  corrupted input itself: the noisy image, or the bicubic baseline for
  sr2/sr4), and evals.restore (type "restoration") gives PSNR (dB) and SSIM
  of the model, the corrupted input and a 3x3 median filter at sigma 0.1,
  0.2, ..., 0.5 (denoise_gaussian) or at the variant's factor (sr2, sr4).
Architecture and schedule: as autoencoder_mnist.py (conv 32-64, 32-d code,
  BCE loss, 10-component latent mixture; Adam(1e-3), batch 128), 30 epochs
  (14,000 steps).
Variants:
  ""                the plain conv autoencoder (no corruption)
  denoise_gaussian  Gaussian noise with sigma drawn uniformly per example in
                    [0.1, 0.5] (clipped to [0, 1]), so one model serves every
                    level of the benchmark
  sr2, sr4          super-resolution: the input is the 2x2 (4x4) area-
                    downsampled image upsampled bicubically back to 28x28
  smoke             seconds on scikit-learn's embedded 8x8 digits with the
                    denoise_gaussian corruption; used by the tests
Commands (data: TFDS fashion_mnist via TFDS_DATA_DIR):
  python -m gen_jax.main --config experiments/autoencoder_fashion_mnist.py \\
      --workdir runs/autoencoder_fashion_mnist
  python -m gen_jax.main --config experiments/autoencoder_fashion_mnist.py:denoise_gaussian \\
      --workdir runs/autoencoder_fashion_mnist_denoise
  python -m gen_jax.main --config experiments/autoencoder_fashion_mnist.py:sr2 \\
      --workdir runs/autoencoder_fashion_mnist_sr2
  python -m gen_jax.main --config experiments/autoencoder_fashion_mnist.py:sr4 \\
      --workdir runs/autoencoder_fashion_mnist_sr4
      each: one GPU, minutes (2 CPU cores: hours; the `cpu` variant of
      autoencoder_mnist.py shows the CPU-sized model)
  python -m gen_jax.main --config experiments/autoencoder_fashion_mnist.py:smoke \\
      --workdir /tmp/ae_fashion_smoke
      seconds; used by the tests
"""
from gen_jax import config_lib

autoencoder_mnist = config_lib.sibling(__file__, "autoencoder_mnist")

VARIANTS = ("denoise_gaussian", "sr2", "sr4", "smoke")
CORRUPTIONS = {
    "": ("none", 0.0, 0.0),
    "denoise_gaussian": ("gaussian", 0.1, 0.5),
    "sr2": ("downsample", 2, 0.0),
    "sr4": ("downsample", 4, 0.0),
    "smoke": ("gaussian", 0.1, 0.5),
}


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  kind, level, level_max = CORRUPTIONS[variant]
  c = autoencoder_mnist.autoencoder_config(
      "fashion_mnist", "smoke" if variant == "smoke" else "", epochs=30, kind=kind,
      level=level, level_max=level_max)
  c.reference.source = ("restoration vs the corrupted input (identity / bicubic baseline); no "
                        "published Fashion-MNIST number")
  c.reference.metric = "test/recon_mse_corrupted"
  c.reference.also = ("test/corrupted_input_mse", "test/recon_mse")
  if kind != "none":   # PSNR / SSIM against the input (and median filter) per level
    levels = (level,) if kind == "downsample" else (0.1, 0.2, 0.3, 0.4, 0.5)
    c.evals.restore = dict(type="restoration", kind=kind, levels=levels, num_examples=0,
                           batch_size=500)
  if variant == "smoke":
    c.evals.restore.update(levels=(0.1, 0.3), num_examples=40, batch_size=20)
  return c
