"""Every record of one tfds split, read without TensorFlow (`tfds.data_source`).

`TFDS_DATA_DIR` is read at call time (tfds reads it once, at import). A dataset
that is not there fails at once with one line saying how to provide it,
instead of tfds retrying downloads for minutes offline.

Image splits are decoded once and kept as arrays in a local cache
(`GEN_JAX_DATA_CACHE`, by default `~/.cache/gen_jax/decoded`; set it to "off"
to turn the cache off): decoding MNIST's 60,000 PNGs took 11-14 s on a 2-core
CPU, reading them back 0.04 s. A cache file is named by the dataset,
split and a fingerprint of the tfds files it came from (their paths, sizes and
modification times), so a changed or moved copy is decoded again.
"""
import glob
import hashlib
import os
import sys

import numpy as np

from gen_jax import errors

CACHE_ENV = "GEN_JAX_DATA_CACHE"


def data_dir() -> str:
  """The tfds data folder: TFDS_DATA_DIR, else tfds' default (~/tensorflow_datasets)."""
  return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def read_all(name: str, split: str, download: bool = False) -> list:
  """[record dict, ...] of `name`'s split `split` (fetched first only when `download`)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    source = tfds.data_source(name, split=split, download=download,
                              data_dir=os.environ.get("TFDS_DATA_DIR") or None)
  except Exception as e:  # tfds raises several types for a missing dataset.
    where = os.environ.get("TFDS_DATA_DIR", "tfds' default data folder")
    raise errors.DataError(
        f"dataset {name!r} (split {split!r}) not found in {where}. Point "
        f"TFDS_DATA_DIR at a folder holding the tfds array_record copy, or pass "
        f"--config.data.download=True on a machine with internet "
        f"[{type(e).__name__}]") from e
  return source.__getitems__(list(range(len(source))))


def split_files(name: str, split: str) -> list[str]:
  """The array_record shards of one split in the tfds data folder (all versions), sorted."""
  return sorted(glob.glob(os.path.join(glob.escape(data_dir()), name, "*",
                                       f"{name}-{split}.array_record*")))


def cache_path(name: str, split: str) -> str:
  """Where the decoded split is (or would be) cached; "" when the cache is off or the
  split's tfds files are not found (nothing to fingerprint)."""
  root = os.environ.get(CACHE_ENV, os.path.expanduser("~/.cache/gen_jax/decoded"))
  files = split_files(name, split)
  if root.lower() in ("", "off", "0", "false") or not files:
    return ""
  h = hashlib.sha1()
  for f in files:
    st = os.stat(f)
    h.update(f"{os.path.realpath(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
  return os.path.join(root, f"{name}-{split}-{h.hexdigest()[:16]}.npz")


def read_images(name: str, split: str, download: bool = False) -> dict:
  """{"x": u8[N, H, W, C], "y": i32[N] (when labelled)} of an image split, through the
  decoded cache."""
  path = cache_path(name, split)
  if path and os.path.isfile(path):
    try:
      with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
    except Exception:  # pylint: disable=broad-except
      pass  # a damaged cache file: decode again and overwrite it
  records = read_all(name, split, download)
  out = {"x": np.stack([r["image"] for r in records]).astype(np.uint8)}
  if "label" in records[0]:
    out["y"] = np.asarray([r["label"] for r in records], np.int32)
  path = path or cache_path(name, split)   # after a download the files exist
  if path:
    try:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tmp = f"{path}.{os.getpid()}.tmp.npz"
      np.savez(tmp, **out)
      os.replace(tmp, path)   # atomic: concurrent readers see the old or the whole file
      print(f"decoded {name}/{split} ({len(out['x']):,} images) cached in {path}",
            file=sys.stderr, flush=True)
    except OSError as e:   # a read-only home: the data is still returned
      print(f"could not cache decoded {name}/{split} in {path}: {e}", file=sys.stderr)
  return out
