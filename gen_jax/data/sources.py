"""Dataset sources. Every source returns process-local numpy arrays in memory.

A `Split` holds named arrays and their `spec` (gen_jax.data.spec): images come
back as `x: u8[N, H, W, C]` (0..255, or 0/1 for datasets that are already
binary) and, where the dataset has them, `y: i32[N]`; text comes back as one
token stream `tokens: i32[N]` with its character vocabulary, batched as random
windows by `pipeline`. Small datasets are read once per process and cached,
then batched from memory by `pipeline`.

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
  text ("tiny_shakespeare" through tfds, "txt": a local file `data.path`,
    "zen": the Zen of Python from the standard library): character tokens;
    splits "train"/"validation"/"test" (tfds) and "nanogpt_train"/"nanogpt_val"
    (the first 90% / last 10% of the whole text, nanoGPT's split); see
    `gen_jax.data.text`.
  "bnlearn": discrete cases `x: i32[N, V]` sampled from a Bayesian network
    (`gen_jax.data.bn_data`; options network, num_train, num_test, hidden, seed).
  "casino", "hmm_gaussian": sequences sampled from a hidden Markov model
    (`gen_jax.data.hmm_data`).
  "ising": 2-D Ising spin configurations sampled by Gibbs (`gen_jax.data.ising_data`).
  "addition": a data-free sequence-to-sequence task ("a+b=" -> the sum)
    generated from a seed (`gen_jax.data.arith`): `inputs: i32[N, Lin]`,
    `targets: i32[N, Lout]`.
"""
import dataclasses
import functools
import os
import zipfile

import numpy as np

from gen_jax import errors
from gen_jax.data import spec as spec_lib
from gen_jax.data import stacked_mnist, toy2d


@dataclasses.dataclass(frozen=True)
class Split:
  """One split of a dataset in memory.

  Attributes:
    arrays: {name: array[N, ...]} per-example arrays; for a text stream,
      {"tokens": i32[N]}, the whole split as one sequence of token ids.
    spec: the per-example fields of `arrays` (for a stream: of one token).
    binary: image values are already in {0, 1}.
    stream: `arrays["tokens"]` is one token stream, batched as windows.
    kind: "image" | "points" | "text" | "seq2seq" | "sequence" | "table" |
      "lattice": which data variants fit (gen_jax.data.variants).
  """
  arrays: dict
  spec: dict
  binary: bool = False
  stream: bool = False
  kind: str = "image"

  def __len__(self) -> int:
    return len(next(iter(self.arrays.values())))

  @property
  def x(self) -> np.ndarray:
    """Images u8[N, H, W, C] or points f32[N, D] (image and point datasets)."""
    return self.arrays["x"]

  @property
  def y(self) -> np.ndarray | None:
    return self.arrays.get("y")

  @property
  def continuous(self) -> bool:
    return self.kind == "points"

  @property
  def vocab(self) -> tuple:
    """Characters of the token ids (text), else ()."""
    f = self.spec.get("tokens") or self.spec.get("inputs")
    return f.vocab if f is not None else ()


def images(x: np.ndarray, y: np.ndarray | None, binary: bool, num_classes: int = 10) -> Split:
  """A Split of images u8[N, H, W, C] and optional labels i32[N]."""
  arrays = {"x": x} if y is None else {"x": x, "y": y}
  s = spec_lib.of_arrays(arrays, {"x": "image", "y": "label"}, {"y": num_classes})
  return Split(arrays, s, binary=binary, kind="image")


def points(x: np.ndarray) -> Split:
  """A Split of continuous points f32[N, D]."""
  return Split({"x": x}, spec_lib.of_arrays({"x": x}, {"x": "points"}), kind="points")


# name -> (kind, binary, {split names}); tfds names are the tfds dataset names.
DATASETS = {
    "mnist": ("tfds", False, ("train", "test")),
    "fashion_mnist": ("tfds", False, ("train", "test")),
    "binarized_mnist": ("tfds", True, ("train", "validation", "test")),
    "digits": ("digits", False, ("train", "test")),
    "npz": ("npz", False, ()),
    **{name: ("toy2d", False, ("train", "test")) for name in toy2d.NAMES},
    **{name: ("stacked", False, ("train", "test")) for name in stacked_mnist.NAMES},
    "tiny_shakespeare": ("text", False, ("train", "validation", "test", "nanogpt_train",
                                         "nanogpt_val")),
    "txt": ("text", False, ("nanogpt_train", "nanogpt_val", "all")),
    "zen": ("text", False, ("nanogpt_train", "nanogpt_val", "all")),
    "addition": ("arith", False, ("train", "test")),
    # Sources that live in their own module: module.load(name, split, path, options) -> Split.
    "casino": ("module", False, ("train", "test")),
    "hmm_gaussian": ("module", False, ("train", "test")),
    "bnlearn": ("module", False, ("train", "test")),
    "ising": ("module", False, ("train", "test")),
}

# The module of each "module" source (imported only when the source is used).
SOURCE_MODULES = {
    "casino": "gen_jax.data.hmm_data",
    "hmm_gaussian": "gen_jax.data.hmm_data",
    "bnlearn": "gen_jax.data.bn_data",
    "ising": "gen_jax.data.ising_data",
}

DIGITS_TRAIN = 1500


def check_name(name: str) -> None:
  if name not in DATASETS:
    raise errors.ConfigError(errors.choices("dataset", name, DATASETS))


def load(name: str, split: str, path: str = "", download: bool = False,
         options: tuple = ()) -> Split:
  """Loads one split of a dataset into memory (cached per process).

  `options` are (key, value) pairs of source-specific settings (the addition
  task's digits, size and seed).
  """
  check_name(name)
  kind, _, splits = DATASETS[name]
  if splits and split not in splits:
    raise errors.ConfigError(errors.choices(f"split of {name}:", split, splits))
  return _load_cached(name, split, path, download, tuple(options))


def from_config(d, split: str) -> Split:
  """`load` with the dataset keys of a config's `data` section."""
  options = tuple(sorted(d.get("options", {}).items()))
  return load(d.name, split, d.path, d.download, options)


@functools.lru_cache(maxsize=8)
def _load_cached(name, split, path, download, options=()) -> Split:
  kind, binary, _ = DATASETS[name]
  if kind == "digits":
    return _digits(split)
  if kind == "npz":
    return _npz(path, split)
  if kind == "toy2d":
    return points(toy2d.generate(name, split))
  if kind == "stacked":
    base = _load_cached(stacked_mnist.BASE[name], split, path, download)
    x, y = stacked_mnist.stack(split, base.x, base.y)
    return images(x, y, binary=False, num_classes=1000)
  if kind == "text":
    return _text(name, split, path, download)
  if kind == "arith":
    return _arith(split, dict(options))
  if kind == "module":
    import importlib  # pylint: disable=g-import-not-at-top
    return importlib.import_module(SOURCE_MODULES[name]).load(name, split, path, dict(options))
  return _tfds(name, split, binary, download)


def _text(name: str, split: str, path: str, download: bool) -> Split:
  from gen_jax.data import text  # pylint: disable=g-import-not-at-top
  body, whole = text.load(name, split, path, download)
  vocab = text.Vocab.from_text(whole)
  tokens = vocab.encode(body)
  field = spec_lib.Field((), "int32", "tokens", vocab.size, vocab.chars)
  return Split({"tokens": tokens}, {"tokens": field}, stream=True, kind="text")


ARITH_SIZES = {"train": 100_000, "test": 1_000}   # default examples per split


def _arith(split: str, options: dict) -> Split:
  from gen_jax.data import arith  # pylint: disable=g-import-not-at-top
  n = int(options.get(f"num_{split}", 0) or ARITH_SIZES[split])
  out = arith.addition(split, n, int(options.get("digits", 3)), int(options.get("seed", 0)))
  arrays = {k: out[k].astype(np.int32) for k in ("inputs", "targets")}
  chars = arith.VOCAB.chars
  s = {k: spec_lib.Field(tuple(v.shape[1:]), "int32", "tokens", len(chars), chars)
       for k, v in arrays.items()}
  return Split(arrays, s, kind="seq2seq")


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's 8x8 digits: (pixels f64[1797, 8, 8] in 0..16, labels i32[1797]).

  Read from the csv that scikit-learn ships (what `sklearn.datasets.load_digits`
  reads), found without importing scikit-learn: its import costs about 2 s per
  process, which every run on the digits would pay.
  """
  import gzip  # pylint: disable=g-import-not-at-top
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.find_spec("sklearn")
  if spec is None or not spec.submodule_search_locations:
    raise errors.DataError("dataset 'digits' needs scikit-learn installed (pip install "
                           "scikit-learn): it ships the digits")
  path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
  with gzip.open(path, "rt") as f:
    data = np.loadtxt(f, delimiter=",")
  return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int32)


def _digits(split: str) -> Split:
  pixels, y = digits_arrays()
  x = np.round(pixels * (255.0 / 16.0)).astype(np.uint8)[..., None]
  sl = slice(0, DIGITS_TRAIN) if split == "train" else slice(DIGITS_TRAIN, None)
  return images(x[sl], y[sl], binary=False)


def _npz(path: str, split: str) -> Split:
  """Images `x_<split>` (u8[N, H, W] or u8[N, H, W, C]) and optional labels `y_<split>`."""
  if not path:
    raise errors.ConfigError("dataset 'npz' needs --config.data.path=FILE.npz")
  if not os.path.isfile(path):
    raise errors.DataError(f"npz file not found: {path}")
  if not zipfile.is_zipfile(path):
    raise errors.DataError(f"{path} is not an .npz file (a zip of named arrays); write it "
                           f"with np.savez(path, x_train=..., x_test=...)")
  key, ykey = f"x_{split}", f"y_{split}"
  try:
    with np.load(path, allow_pickle=False) as f:
      files = list(f.files)
      if key not in files:
        raise errors.DataError(
            f"{path} has no array {key!r}; arrays present: "
            f"{', '.join(files) or 'none'}; add it (np.savez(..., {key}=...)) or choose "
            f"another split")
      x = f[key]
      y = f[ykey] if ykey in files else None
  except errors.GenJaxError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # np.load raises ValueError, OSError, EOFError, zipfile.BadZipFile, ...
    raise errors.DataError(
        f"{path} is not a readable .npz file ({type(e).__name__}: "
        f"{(str(e).splitlines() or [''])[0][:100]}); write it with np.savez") from e
  if not isinstance(x, np.ndarray) or x.ndim not in (3, 4):
    raise errors.DataError(
        f"{path}:{key} must be images u8[N, H, W] or u8[N, H, W, C] (got shape "
        f"{getattr(x, 'shape', '?')})")
  if x.ndim == 3:
    x = x[..., None]
  if x.dtype != np.uint8:
    raise errors.DataError(f"{path}:{key} must be uint8 images (got {x.dtype})")
  if not len(x) or not x[0].size:
    raise errors.DataError(f"{path}:{key} holds no examples (shape {x.shape})")
  if y is not None:
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
      raise errors.DataError(
          f"{path}:{ykey} must be one integer label >= 0 per example of {key}: shape "
          f"({len(x)},) (got {y.dtype} {y.shape})")
    y = y.astype(np.int32)
  binary = bool(x.max() <= 1)
  return images(x, y, binary=binary, num_classes=int(y.max()) + 1 if y is not None else 0)


def _tfds(name: str, split: str, binary: bool, download: bool) -> Split:
  from gen_jax.data import tfds_records  # pylint: disable=g-import-not-at-top
  arrays = tfds_records.read_images(name, split, download)
  return images(arrays["x"], arrays.get("y"), binary=binary)
