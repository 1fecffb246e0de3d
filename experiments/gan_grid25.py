"""GANs on the 5x5 grid of 25 Gaussians (std 0.05, spacing 2): mode collapse on 2-D data.

Target:   all 25 modes covered with >= 80% high-quality samples (within 3 std
  of a centre), 2,500 samples. References: VEEGAN 24.6 modes at 40% high
  quality (Srivastava et al. 2017, Table 1, "2D Grid"); PacGAN reports GAN
  17.3 modes / 94.8%, PacGAN2 23.8 / 91.3% (Lin et al. 2018, Table 2).
Architecture (PacGAN's grid setting): z in R^2; G: 4 ReLU layers of 400 with
  BatchNorm; D: 3 leaky-ReLU layers of 200 (PacGAN uses maxout units); batch 100.
Variants:
  "" (default)  non-saturating GAN, Adam(1e-4, b1=0.5), 20,000 steps
  "ttur"        non-saturating GAN with the discriminator's learning rate 4x
                the generator's (4e-4 vs 1e-4; TTUR, Heusel et al. 2017), 30,000 steps
  "ttur_ema"    TTUR learning rates decayed (cosine, to 1%) over 60,000 steps,
                samples from an EMA (0.999) of the generator's parameters
  "pacgan"      PacGAN2 (the discriminator judges pairs of samples; Lin et al.
                2018) with the "ttur_ema" schedule stretched to 120,000 steps.
                At 60,000 steps it covered all 25 modes at 76% high quality,
                the packed discriminator at chance until ~15,000. A 10,000-step trial at
                constant learning rates left the packed discriminator at chance
                (d/loss 1.39) and G spread over the whole square.
  "wgan_gp"     WGAN-GP: 5 critic updates per step, lambda=0.1 (Gulrajani et
                al.'s toy setting), Adam(1e-4, 0.5, 0.9), 10,000 generator steps
                (50,000 critic updates)
  "smoke"       seconds; used by the tests
Commands:
  python -m gen_jax.main --config experiments/gan_grid25.py --workdir runs/gan_grid25
  python -m gen_jax.main --config experiments/gan_grid25.py:ttur --workdir runs/gan_grid25_ttur
  python -m gen_jax.main --config experiments/gan_grid25.py:ttur_ema \
      --workdir runs/gan_grid25_ttur_ema
  python -m gen_jax.main --config experiments/gan_grid25.py:pacgan --workdir runs/gan_grid25_pacgan
  python -m gen_jax.main --config experiments/gan_grid25.py:wgan_gp \
      --workdir runs/gan_grid25_wgan_gp
  python -m gen_jax.main --config experiments/gan_grid25.py:smoke --workdir /tmp/gan_grid25_smoke
Hardware: 2 CPU cores; minutes (see docs/runs/ for measured times; "pacgan",
  120,000 steps: all 25 modes at 86.5% high quality in 14 minutes on one core). PacGAN
  trains far longer (400 epochs of 100,000 points); these CPU schedules are shorter.
"""
from gen_jax import config_lib, optim
from gen_jax.models import gan

VARIANTS = ("ttur", "ttur_ema", "pacgan", "wgan_gp", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = toy_config("grid25", variant, extent=5.5)
  if variant == "pacgan":
    c.total_steps = 120000
    c.optim.d.decay_steps = c.optim.g.decay_steps = c.total_steps
  return c


def toy_config(dataset: str, variant: str, extent: float):
  """The 2-D mixture GAN setup shared by gan_grid25 and gan_ring8."""
  c = config_lib.base()
  c.family = "gan"
  c.model = gan.default_model(arch="mlp", loss="nonsaturating", z_dim=2,
                              g_hidden=(400, 400, 400, 400), d_hidden=(200, 200, 200),
                              batch_norm=True, spectral_norm=False)
  c.data.update(name=dataset, variant="continuous", batch_size=100)
  c.optim.d = optim.adam(1e-4, b1=0.5)
  c.optim.g = optim.adam(1e-4, b1=0.5)
  c.total_steps = 20000
  c.steps_per_dispatch = 100
  c.log_every_steps = 1000
  c.ckpt_every_steps = 5000
  c.num_samples = 2500
  c.plot_extent = extent
  c.reference.update(metric="modes/modes_covered", value=24.6 if dataset == "grid25" else 8.0,
                     source="VEEGAN (Srivastava et al. 2017), Table 1")
  c.evals = dict(modes=dict(type="modes", mixture=dataset, num_samples=2500, threshold=3.0,
                            min_count=1))
  if variant == "ttur":
    c.optim.d.lr = 4e-4
    c.total_steps = 30000
  if variant in ("ttur_ema", "pacgan"):
    c.total_steps = 60000
    c.optim.d = optim.adam(4e-4, b1=0.5, schedule="cosine", warmup_steps=0,
                           decay_steps=c.total_steps, final_lr_frac=0.01)
    c.optim.g = optim.adam(1e-4, b1=0.5, schedule="cosine", warmup_steps=0,
                           decay_steps=c.total_steps, final_lr_frac=0.01)
    c.ema_decay = 0.999
    c.model.pack = 2 if variant == "pacgan" else 1
  if variant.startswith("wgan_gp"):
    c.model.update(loss="wasserstein", gp_weight=0.1, n_critic=5)
    c.optim.d = optim.adam(1e-4, b1=0.5, b2=0.9)
    c.optim.g = optim.adam(1e-4, b1=0.5, b2=0.9)
    c.total_steps = 10000
  if variant == "smoke":
    c.model.update(g_hidden=(32, 32), d_hidden=(32, 32))
    c.total_steps, c.steps_per_dispatch = 20, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 200
    c.evals.modes.num_samples = 500
  return c
