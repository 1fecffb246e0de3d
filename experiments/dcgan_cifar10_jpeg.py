"""DCGAN on "CIFAR-10 (JPEG q75 copy)": 32x32x3 GAN on the lossy JPEG copy of CIFAR-10.

NOT CIFAR-10 pixels: the only offline copy is JPEG (IJG quality 75, 4:2:0
chroma subsampling), so every number and figure from this config is labelled
"CIFAR-10 (JPEG q75 copy)" and must not be compared with published CIFAR-10
FID/IS (Inception weights are not available offline either).
Target:   a working 32x32x3 DCGAN pipeline on this data (sample grids);
  published CIFAR-10 reference for the architecture, not comparable here:
  DCGAN IS 6.16 (Gulrajani et al. 2017, Table 3).
Architecture: DCGAN at 32x32 (z 100, G 4x4x4ch -> 8 -> 16 -> 32, BN + ReLU,
  tanh; D 3 stride-2 convs ch-2ch-4ch with BN, leaky ReLU), non-saturating
  loss, Adam(2e-4, b1=0.5), batch 128, n_dis 1 (the CNN32 setting of
  w86763777/pytorch-gan-collections).
Data: the CIFAR-10 JPEG copy (npz of JPEG bytes) decoded once into an npz with
  x_train/y_train/x_test/y_test (uint8 NHWC):
    python experiments/dcgan_cifar10_jpeg.py JPEG_DIR runs/cifar10_jpeg_q75.npz
  where JPEG_DIR holds cifar10_jpeg_{train_part1,train_part2,test}.npz.
Commands:
  python -m gen_jax.main --config experiments/dcgan_cifar10_jpeg.py \
      --workdir runs/dcgan_cifar10_jpeg --config.data.path=runs/cifar10_jpeg_q75.npz
      ch=64, 100,000 steps; one GPU, about an hour (not run here)
  python -m gen_jax.main --config experiments/dcgan_cifar10_jpeg.py:smoke --workdir /tmp/dc_smoke
      seconds on stacked 8x8 scikit-learn digits as stand-in RGB images (CPU); used by the tests
"""
import sys

import numpy as np

from gen_jax import config_lib, optim
from gen_jax.models import gan

VARIANTS = ("smoke",)
LABEL = "CIFAR-10 (JPEG q75 copy)"


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "gan"
  c.model = gan.default_model(arch="dcgan", loss="nonsaturating", z_dim=100, g_ch=64, d_ch=64,
                              d_norm="batch")
  c.data.update(name="npz", variant="grayscale", batch_size=128, path="")
  c.data.description = LABEL
  c.optim.d = optim.adam(2e-4, b1=0.5)
  c.optim.g = optim.adam(2e-4, b1=0.5)
  c.total_steps = 100000
  c.steps_per_dispatch = 50
  c.log_every_steps = 1000
  c.ckpt_every_steps = 5000
  c.sample_every_steps = 10000
  c.reference.update(metric="", value=0.0,
                     source=f"{LABEL}: no comparable published number (lossy data, no Inception)")
  # No CIFAR classifier here, so no FD; D's mean output on held-out test images
  # (vs its output on training images, logged as d/real_logit) flags D overfitting.
  c.evals = dict(samples_cifar10_jpeg_q75=dict(type="samples", num=64),
                 d_test=dict(type="likelihood", batch_size=500, num_examples=5000))
  if variant == "smoke":
    c.data.update(name="stacked_digits", batch_size=50)
    c.data.description = "stacked scikit-learn digits (stand-in for " + LABEL + ")"
    c.model.update(z_dim=16, g_ch=8, d_ch=8)
    c.total_steps, c.steps_per_dispatch = 10, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.sample_every_steps = 0
    c.num_samples = 16
    c.evals.samples_cifar10_jpeg_q75.num = 16
    c.evals.d_test.update(batch_size=100, num_examples=200)
  return c


def decode(jpeg_dir: str, out_path: str) -> None:
  """Decodes the CIFAR-10 JPEG copy (npz of JPEG streams) into x_/y_ train/test arrays."""
  import io  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top

  from PIL import Image  # pylint: disable=g-import-not-at-top

  def read(name):
    with np.load(os.path.join(jpeg_dir, name)) as f:
      jpeg, offsets, y = f["jpeg"], f["offsets"], f["y"]
    x = np.stack([np.asarray(Image.open(io.BytesIO(jpeg[offsets[i]:offsets[i + 1]].tobytes()))
                             .convert("RGB")) for i in range(len(offsets) - 1)])
    return x.astype(np.uint8), y.astype(np.int32)

  parts = [read(f"cifar10_jpeg_train_part{i}.npz") for i in (1, 2)]
  x_test, y_test = read("cifar10_jpeg_test.npz")
  np.savez(out_path, x_train=np.concatenate([p[0] for p in parts]),
           y_train=np.concatenate([p[1] for p in parts]), x_test=x_test, y_test=y_test)
  print(f"wrote {out_path} ({LABEL})")


if __name__ == "__main__":
  decode(sys.argv[1], sys.argv[2])
