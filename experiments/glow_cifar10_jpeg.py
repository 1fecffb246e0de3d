"""Glow on "CIFAR-10 (JPEG q75 copy)": bits/dim of the lossy JPEG copy of CIFAR-10.

NOT CIFAR-10 pixels: the only offline copy is JPEG (IJG quality 75, 4:2:0
chroma subsampling). JPEG smooths the images, so their bits/dim are not
comparable with published CIFAR-10 numbers; every number from this config is
labelled "CIFAR-10 (JPEG q75 copy)".
Target: a working Glow pipeline on 32x32x3 data; for orientation only, Glow
  reports 3.35 bits/dim on real CIFAR-10 (Kingma & Dhariwal 2018, Table 2;
  K=32, L=3, 512 channels, multi-GPU days), not comparable here.
Model: L=3 levels (32x32x3 -> 16x16x12 -> 8x8x24 -> 4x4x48), K steps of
  [ActNorm, LU 1x1 conv, affine coupling], inputs centred, 8-bit dequantized.
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
from gen_jax import config_lib, optim

VARIANTS = ("smoke",)
LABEL = "CIFAR-10 (JPEG q75 copy)"


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "flow"
  c.model = dict(arch="glow", levels=3, steps=16, hidden=128, scale_bound=2.0, actnorm=True,
                 preprocess="center", logit_alpha=0.05, temperature=1.0)
  c.data.update(name="npz", variant="dequantized_8bit", batch_size=64, path="")
  c.data.description = LABEL
  c.optim.model = optim.adam(1e-3, schedule="cosine", warmup_steps=2000,
                             decay_steps=100_000, final_lr_frac=0.01, grad_clip_norm=100.0)
  c.total_steps = 100_000
  c.steps_per_dispatch = 50
  c.log_every_steps = 1000
  c.ckpt_every_steps = 5000
  c.reference.update(metric="", value=0.0,
                     source=f"{LABEL}: no comparable published number (lossy data)")
  c.evals = dict(
      test_ll=dict(type="likelihood", batch_size=500, num_examples=0),
      samples_t07=dict(type="samples", num=64, kwargs=dict(temperature=0.7)),
  )
  if variant == "smoke":
    c.data.update(name="stacked_digits", batch_size=32)
    c.data.description = "stacked scikit-learn digits (stand-in for " + LABEL + ")"
    c.model.update(levels=2, steps=1, hidden=8)
    c.optim.model.update(warmup_steps=2, decay_steps=20)
    c.total_steps, c.steps_per_dispatch = 20, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 16
    c.evals.test_ll.update(num_examples=64, batch_size=32)
    c.evals.samples_t07.num = 16
  return c
