"""Dataset sources. Every source returns process-local numpy arrays in memory.

Images come back as `x: u8[N, H, W, C]` (0..255, or 0/1 for datasets that are
already binary) and, where the dataset has them, `y: i32[N]`. Small datasets are
read once per process and cached, then batched from memory by `pipeline`.

Sources:
  tfds names ("mnist", "fashion_mnist", "binarized_mnist"): read through
    `tfds.data_source` from `TFDS_DATA_DIR` (or tfds' default folder); no
    TensorFlow needed. With `data.download=True` tfds fetches the official data
    on a machine with internet.
  "npz": a local file `data.path` with arrays `x_<split>` (and optional `y_<split>`).
  "digits": scikit-learn's 8x8 digits, shipped inside the package (no files,
    no network): 1,797 images, 17 gray levels rescaled to 0..255; split
    "train" is the first 1,500 and "test" the remaining 297.
  toy 2-D densities ("moons", "8gaussians", "checkerboard", "2spirals",
    "ring8", "grid25"): continuous points `x: f32[N, 2]` generated from fixed
    seeds (`gen_jax.data.toy2d`); their only data variant is "continuous".
  "stacked_mnist", "stacked_digits": three base digits as RGB channels, 1,000
    modes (`gen_jax.data.stacked_mnist`).
"""
import dataclasses
import functools
import os

import numpy as np

from gen_jax import errors
from gen_jax.data import stacked_mnist, toy2d


@dataclasses.dataclass(frozen=True)
class Split:
  x: np.ndarray                 # u8[N, H, W, C] images, or f32[N, D] continuous data
  y: np.ndarray | None          # i32[N] or None
  binary: bool                  # values are already in {0, 1}

  def __len__(self) -> int:
    return len(self.x)

  @property
  def continuous(self) -> bool:
    return self.x.dtype != np.uint8


# name -> (kind, binary, {split names}); tfds names are the tfds dataset names.
DATASETS = {
    "mnist": ("tfds", False, ("train", "test")),
    "fashion_mnist": ("tfds", False, ("train", "test")),
    "binarized_mnist": ("tfds", True, ("train", "validation", "test")),
    "digits": ("digits", False, ("train", "test")),
    "npz": ("npz", False, ()),
    **{name: ("toy2d", False, ("train", "test")) for name in toy2d.NAMES},
    **{name: ("stacked", False, ("train", "test")) for name in stacked_mnist.NAMES},
}

DIGITS_TRAIN = 1500


def check_name(name: str) -> None:
  if name not in DATASETS:
    raise errors.ConfigError(errors.choices("dataset", name, DATASETS))


def load(name: str, split: str, path: str = "", download: bool = False) -> Split:
  """Loads one split of a dataset into memory (cached per process)."""
  check_name(name)
  kind, _, splits = DATASETS[name]
  if splits and split not in splits:
    raise errors.ConfigError(errors.choices(f"split of {name}:", split, splits))
  return _load_cached(name, split, path, download)


@functools.lru_cache(maxsize=8)
def _load_cached(name, split, path, download) -> Split:
  kind, binary, _ = DATASETS[name]
  if kind == "digits":
    return _digits(split)
  if kind == "npz":
    return _npz(path, split)
  if kind == "toy2d":
    return Split(toy2d.generate(name, split), None, binary=False)
  if kind == "stacked":
    base = _load_cached(stacked_mnist.BASE[name], split, path, download)
    return Split(*stacked_mnist.stack(split, base.x, base.y), binary=False)
  return _tfds(name, split, binary, download)


def _digits(split: str) -> Split:
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  d = datasets.load_digits()
  x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  y = d.target.astype(np.int32)
  sl = slice(0, DIGITS_TRAIN) if split == "train" else slice(DIGITS_TRAIN, None)
  return Split(x[sl], y[sl], binary=False)


def _npz(path: str, split: str) -> Split:
  if not path:
    raise errors.ConfigError("dataset 'npz' needs --config.data.path=FILE.npz")
  if not os.path.isfile(path):
    raise errors.DataError(f"npz file not found: {path}")
  with np.load(path, allow_pickle=False) as f:
    key = f"x_{split}"
    if key not in f:
      raise errors.DataError(
          f"{path} has no array {key!r}; arrays present: {', '.join(f.files)}")
    x = f[key]
    y = f[f"y_{split}"].astype(np.int32) if f"y_{split}" in f else None
  if x.ndim == 3:
    x = x[..., None]
  if x.dtype != np.uint8:
    raise errors.DataError(f"{path}:{key} must be uint8 images (got {x.dtype})")
  binary = bool(x.max() <= 1)
  return Split(x, y, binary=binary)


def _tfds(name: str, split: str, binary: bool, download: bool) -> Split:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    # Read TFDS_DATA_DIR at call time (tfds reads it once, at import).
    source = tfds.data_source(name, split=split, download=download,
                              data_dir=os.environ.get("TFDS_DATA_DIR") or None)
  except Exception as e:  # tfds raises several types for a missing dataset.
    where = os.environ.get("TFDS_DATA_DIR", "tfds' default data folder")
    raise errors.DataError(
        f"dataset {name!r} (split {split!r}) not found in {where}. Point "
        f"TFDS_DATA_DIR at a folder holding the tfds array_record copy, or pass "
        f"--config.data.download=True on a machine with internet "
        f"[{type(e).__name__}]") from e
  records = source.__getitems__(list(range(len(source))))
  x = np.stack([r["image"] for r in records]).astype(np.uint8)
  y = np.asarray([r["label"] for r in records], np.int32) if "label" in records[0] else None
  return Split(x, y, binary=binary)
