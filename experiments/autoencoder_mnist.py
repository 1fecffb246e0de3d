"""Convolutional (DCAE-style) autoencoder on MNIST, with a latent mixture to sample from.

Target:   the test reconstruction error (test/recon_mse: mean squared error per
  pixel on [0, 1], MNIST 8-bit as x / 255) and, through it, the DCAE anomaly
  baseline of Ruff et al. 2018 ("Deep One-Class Classification", ICML, Table
  1): reconstruction error as the anomaly score, one normal class of the
  train split against the full test set, mean AUROC ~92 over the ten MNIST
  classes. That number is reached by an anomaly application that trains this
  config on one class at a time; this run trains on all ten classes and
  reports the reconstruction error, recon_bce (nats per image) and
  latent_nll (nats per 32-d code under the fitted 10-component mixture).
Architecture: encoder 3x3 stride-2 convs 32-64 (leaky ReLU) and a dense
  32-d code (Ruff's DCAE rep_dim); decoder a dense 7x7x64 stem and two
  sub-pixel x2 stages (64, 32), one logit per pixel, sigmoid mean; Bernoulli
  cross-entropy loss with the gray values as targets. Ruff's DCAE objective,
  the MSE through the sigmoid (--config.model.loss=mse), saturates: the `cpu`
  model trained with it at this learning rate output a blank image within
  200 steps (test MSE 0.11, gradient norm 1e-8; measured). Latent density:
  diagonal Gaussian mixture, K=10, online EM (decay 0.99) from step 1,000.
  Adam(1e-3), batch 128, 20 epochs (9,300 steps).
Variants:
  ""         the conv autoencoder above
  mlp        the VAE's MLP shape, 784-256-256-32 (leaky ReLU), mirrored
  denoising  the conv autoencoder trained on inputs with Gaussian noise
             sigma 0.3 (clipped to [0, 1]; Vincent et al. 2010); masking noise
             instead: --config.model.corruption.kind=masking
             --config.model.corruption.level=0.25
  cpu        channels 16-32, batch 64, 4,000 steps (4.3 epochs), fit from
             step 500: sized for ~10 minutes on 2 CPU cores. Measured: test
             recon_mse 0.0045 per pixel, recon_bce 58.19 nats per image,
             latent_nll 45.17 nats per code; 12m50s wall (6.4 CPU-minutes)
             on 2 CPU cores shared with other jobs
  smoke      seconds on scikit-learn's embedded 8x8 digits; used by the tests
Commands (data: TFDS mnist via TFDS_DATA_DIR):
  python -m gen_jax.main --config experiments/autoencoder_mnist.py --workdir runs/autoencoder_mnist
      one GPU, minutes (2 CPU cores: hours)
  python -m gen_jax.main --config experiments/autoencoder_mnist.py:mlp \\
      --workdir runs/autoencoder_mnist_mlp
      one GPU, minutes
  python -m gen_jax.main --config experiments/autoencoder_mnist.py:denoising \\
      --workdir runs/autoencoder_mnist_denoising
      one GPU, minutes
  python -m gen_jax.main --config experiments/autoencoder_mnist.py:cpu \\
      --workdir runs/autoencoder_mnist_cpu
      2 CPU cores, ~10 minutes (see the cpu variant above)
  python -m gen_jax.main --config experiments/autoencoder_mnist.py:smoke --workdir /tmp/ae_smoke
      seconds; used by the tests
"""
from gen_jax import config_lib, optim

VARIANTS = ("mlp", "denoising", "cpu", "smoke")
TRAIN_EXAMPLES = {"mnist": 60000, "fashion_mnist": 60000}


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = autoencoder_config("mnist", variant, epochs=20)
  if variant == "mlp":
    c.model.update(arch="mlp", hidden=(256, 256))
    c.steps_per_dispatch = 100
  if variant == "denoising":
    c.model.corruption.update(kind="gaussian", level=0.3)
  return c


def autoencoder_config(dataset: str, variant: str, epochs: int, kind: str = "none",
                       level: float = 0.0, level_max: float = 0.0):
  """The DCAE-style conv autoencoder on a 28x28 8-bit dataset.

  `variant` "cpu" shrinks it to ~10 minutes on 2 CPU cores, "smoke" to seconds
  on digits; `kind`, `level`, `level_max` are the training corruption.
  """
  c = config_lib.base()
  c.family = "autoencoder"
  c.model = dict(arch="conv", hidden=(32, 64), latent=32, activation="leaky_relu", loss="bce",
                 corruption=dict(kind=kind, level=level, level_max=level_max),
                 latent_components=10, latent_ema=0.99, latent_fit_start_steps=1000,
                 latent_var_floor=1e-4, latent_kmeans_iters=10)
  c.data.update(name=dataset, variant="grayscale", batch_size=128)
  steps = epochs * TRAIN_EXAMPLES[dataset] // c.data.batch_size // 100 * 100
  c.optim.model = optim.adam(1e-3)
  c.total_steps = steps
  # One step per dispatch: XLA:CPU runs convolutions inside lax.scan ~25x slower
  # (measured for the `cpu` model: 1.8 against 0.07 CPU-seconds per step); on
  # accelerators raise it.
  c.steps_per_dispatch = 1
  c.log_every_steps = 500
  c.ckpt_every_steps = 2000
  c.num_samples = 64
  c.reference.update(
      metric="test/recon_mse", value=0.0, also=("test/recon_mse_corrupted", "test/latent_nll"),
      source="reconstruction error; DCAE anomaly baseline (Ruff et al. 2018, Table 1) via "
             "the one-class anomaly application")
  c.evals = dict(
      test=dict(type="likelihood", batch_size=500, num_examples=0),
      recon=dict(type="reconstructions", num=16),
      samples=dict(type="samples", num=64),
  )
  if variant == "cpu":
    c.model.hidden = (16, 32)
    c.data.batch_size = 64
    c.total_steps = 4000
    c.log_every_steps = 500
    c.ckpt_every_steps = 2000
    c.model.latent_fit_start_steps = 500
  if variant == "smoke":
    c.data.update(name="digits", batch_size=20)
    c.model.update(hidden=(4, 8), latent=4, latent_components=3, latent_fit_start_steps=4)
    c.total_steps, c.steps_per_dispatch = 10, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 16
    c.evals.test.update(batch_size=20, num_examples=40)
    c.evals.recon.num = 8
    c.evals.samples.num = 16
  return c
