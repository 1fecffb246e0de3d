"""Glow on "CIFAR-10 (JPEG q75 copy)": bits/dim of the lossy JPEG copy of CIFAR-10.

NOT CIFAR-10 pixels: the only offline copy is JPEG (IJG quality 75, 4:2:0
chroma subsampling). JPEG smooths the images, so their bits/dim are not
comparable with published CIFAR-10 numbers; every number from this config is
labelled "CIFAR-10 (JPEG q75 copy)".
Target: a working Glow pipeline on 32x32x3 data; for orientation only, Glow
  reports 3.35 bits/dim on real CIFAR-10 (Kingma & Dhariwal 2018, Table 2;
  K=32, L=3, 512 channels, multi-GPU days), not comparable here.
Model: L=3 levels (32x32x3 -> 16x16x12 -> 8x8x24 -> 4x4x48), K steps of
  [ActNorm, LU 1x1 conv, affine coupling], Glow's learned priors (the split
  priors conditioned on the kept half and a learned top prior, as glow_mnist),
  inputs centred, 8-bit dequantized.
Data: decode the JPEG copy once into an npz of uint8 arrays:
    python experiments/dcgan_cifar10_jpeg.py JPEG_DIR runs/cifar10_jpeg_q75.npz
  (JPEG_DIR holds cifar10_jpeg_{train_part1,train_part2,test}.npz).

Commands:
  python -m gen_jax.main --config experiments/glow_cifar10_jpeg.py \\
      --workdir runs/glow_cifar10_jpeg --config.data.path=runs/cifar10_jpeg_q75.npz
      K=16, 128 channels, batch 64, 100k steps; one GPU, many hours (not run here)
  python -m gen_jax.main --config experiments/glow_cifar10_jpeg.py:smoke --workdir /tmp/glow_c_smoke
      seconds on stacked scikit-learn digits (8x8x3 stand-in) on the CPU; used by the tests
"""
from gen_jax import config_lib

realnvp_mnist = config_lib.sibling(__file__, "realnvp_mnist")

VARIANTS = ("smoke",)
LABEL = "CIFAR-10 (JPEG q75 copy)"


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = realnvp_mnist.image_flow_config(variant, arch="glow", levels=3, steps=16,
                                      preprocess="center", reference=0.0, hidden=128,
                                      coupling_scale="sigmoid", learned_prior=True)
  c.data.update(name="npz", path="", description=LABEL)
  c.reference.update(metric="test_ll/bpd", value=0.0,
                     source=f"{LABEL}: no comparable published number (lossy data)")
  if variant == "smoke":
    c.data.update(name="stacked_digits", description=f"stacked scikit-learn digits "
                                                     f"(stand-in for {LABEL})")
  return c
