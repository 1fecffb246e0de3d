"""GANs on the ring of 8 Gaussians (radius 2, std 0.02): mode collapse on 2-D data.

Target:   all 8 modes with >= 80% high-quality samples (within 3 std of a
  centre), 2,500 samples. References (Srivastava et al. 2017, VEEGAN, Table 1,
  "2D Ring"): GAN 1 mode / 99.3%, Unrolled GAN 7.6 / 35.6%, VEEGAN 8.0 / 52.9%.
Architecture and optimizer: as experiments/gan_grid25.py (z in R^2, G 4x400
  ReLU with BatchNorm, D 3x200 leaky-ReLU, batch 100, Adam(1e-4, b1=0.5)).
Variants: "" non-saturating GAN, 20,000 steps; "ttur" (D learning rate
  4e-4, 30,000 steps); "ttur_ema" (TTUR rates decayed over 60,000 steps,
  samples from a 0.999 EMA of G); "pacgan" ("ttur_ema" with PacGAN2
  packing); "wgan_gp" (n_critic 5, lambda 0.1, 10,000 generator steps);
  "smoke" (seconds; used by the tests).
Commands:
  python -m gen_jax.main --config experiments/gan_ring8.py --workdir runs/gan_ring8
  python -m gen_jax.main --config experiments/gan_ring8.py:ttur --workdir runs/gan_ring8_ttur
  python -m gen_jax.main --config experiments/gan_ring8.py:wgan_gp --workdir runs/gan_ring8_wgan
  python -m gen_jax.main --config experiments/gan_ring8.py:smoke --workdir /tmp/gan_ring8_smoke
Hardware: 2 CPU cores, minutes (see docs/runs/ for measured times).
"""
from gen_jax import config_lib

gan_grid25 = config_lib.sibling(__file__, "gan_grid25")

VARIANTS = ("ttur", "ttur_ema", "pacgan", "wgan_gp", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = gan_grid25.toy_config("ring8", variant, extent=3.0)
  c.reference.update(value=8.0, source="VEEGAN (Srivastava et al. 2017), Table 1, 2D Ring")
  return c
