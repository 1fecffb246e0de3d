"""Every record of one tfds split, read without TensorFlow (`tfds.data_source`).

`TFDS_DATA_DIR` is read at call time (tfds reads it once, at import). A dataset
that is not there fails at once with one line saying how to provide it,
instead of tfds retrying downloads for minutes offline.
"""
import os

from gen_jax import errors


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
