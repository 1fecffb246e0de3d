"""Character-level text: sources, a vocabulary, random-window batches and n-gram baselines.

Text comes back as a Python `str`; a `Vocab` turns it into `i32[N]` token ids.
The vocabulary is built from the whole text of a dataset (every split), so the
id of a character never depends on which split was loaded.

Sources:
  "tiny_shakespeare": read through `tfds.data_source` from `TFDS_DATA_DIR` (or
    tfds' default folder); no TensorFlow needed. With `data.download=True` tfds
    fetches the official data on a machine with internet. Each tfds split is one
    record whose "text" field holds the whole split; train + validation + test
    concatenated is Karpathy's `input.txt` exactly (1,115,394 characters, 65
    symbols).
  "txt": a local UTF-8 file `data.path`.
  "zen": the Zen of Python from the standard library's `this` module (856
    characters, 45 symbols): a text that ships with Python, for smoke tests.

Split schemes (named, so a number always says which one it was measured on):
  "train", "validation", "test": tiny_shakespeare's tfds splits (90/5/5).
  "nanogpt_train", "nanogpt_val": the first 90% / last 10% of the whole text,
    `text[:int(n * 0.9)]` / `text[int(n * 0.9):]`, as nanoGPT's
    data/shakespeare_char/prepare.py. On tiny_shakespeare nanogpt_train equals
    the tfds train split and nanogpt_val equals validation + test.
  "all": the whole text (txt and zen only).
"""
import contextlib
import dataclasses
import functools
import io
import math
import os

import numpy as np

from gen_jax import errors

_NANOGPT = ("nanogpt_train", "nanogpt_val")
_TFDS_SPLITS = ("train", "validation", "test")

# name -> valid splits.
DATASETS = {
    "tiny_shakespeare": _TFDS_SPLITS + _NANOGPT,
    "txt": _NANOGPT + ("all",),
    "zen": _NANOGPT + ("all",),
}

NANOGPT_TRAIN_FRACTION = 0.9


@dataclasses.dataclass(frozen=True)
class Vocab:
  """A character vocabulary: id i is `chars[i]`.

  Attributes:
    chars: the distinct single characters, in id order.
  """
  chars: tuple[str, ...]

  def __post_init__(self):
    # Accept a plain string too; a tuple keeps the dataclass hashable.
    object.__setattr__(self, "chars", tuple(self.chars))
    if any(len(c) != 1 for c in self.chars) or len(set(self.chars)) != len(self.chars):
      raise errors.DataError("a vocabulary must hold distinct single characters")

  @classmethod
  def from_text(cls, text: str) -> "Vocab":
    """The sorted distinct characters of `text` (as nanoGPT's prepare.py)."""
    return cls(tuple(sorted(set(text))))

  @property
  def size(self) -> int:
    return len(self.chars)

  @functools.cached_property
  def _codes(self) -> np.ndarray:
    """Unicode code points of the characters, in id order: u32[V]."""
    return np.asarray([ord(c) for c in self.chars], np.uint32)

  @functools.cached_property
  def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
    """(order i64[V], code points in increasing order u32[V]) for vectorized lookup."""
    order = np.argsort(self._codes, kind="stable")
    return order, self._codes[order]

  def encode(self, text: str) -> np.ndarray:
    """Token ids of `text`: i32[len(text)].

    Raises:
      DataError: `text` has characters outside the vocabulary.
    """
    # UTF-32 gives one code point per character, so a million characters encode
    # with one searchsorted instead of a Python loop.
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    order, sorted_codes = self._sorted
    pos = np.minimum(np.searchsorted(sorted_codes, codes), max(self.size - 1, 0))
    known = sorted_codes[pos] == codes if self.size else np.zeros(len(codes), bool)
    if not known.all():
      unknown = sorted({chr(c) for c in codes[~known]})
      shown = ", ".join(repr(c) for c in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
      raise errors.DataError(
          f"text has {len(unknown)} characters not in the vocabulary ({shown}); the "
          f"vocabulary is the training text's characters, so encode text from that dataset")
    return order[pos].astype(np.int32)

  def decode(self, ids) -> str:
    """The text of token ids `ids: int[N]` (any integer dtype).

    Raises:
      DataError: an id is outside [0, size), e.g. a special token.
    """
    ids = np.asarray(ids).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= self.size):
      raise errors.DataError(
          f"token ids must lie in [0, {self.size}) to decode; drop special tokens first")
    return self._codes[ids].tobytes().decode("utf-32-le")

  def to_json(self) -> dict:
    """A JSON-friendly dict: {"chars": the characters joined, in id order}."""
    return {"chars": "".join(self.chars)}

  @classmethod
  def from_json(cls, d: dict) -> "Vocab":
    """Inverse of `to_json`."""
    return cls(tuple(d["chars"]))


def check(name: str, split: str) -> None:
  """Raises ConfigError for an unknown text dataset or split."""
  if name not in DATASETS:
    raise errors.ConfigError(errors.choices("text dataset", name, DATASETS))
  if split not in DATASETS[name]:
    raise errors.ConfigError(errors.choices(f"split of {name}:", split, DATASETS[name]))


def load(name: str, split: str, path: str = "", download: bool = False) -> tuple[str, str]:
  """Loads one split of a text dataset (the whole text is cached per process).

  Args:
    name: "tiny_shakespeare", "txt" or "zen".
    split: one of `DATASETS[name]` (see the module docstring).
    path: the file of "txt".
    download: let tfds fetch tiny_shakespeare (needs internet); offline keep
      False so a missing copy fails at once.

  Returns:
    (text, vocab_text): the split's text, and the whole text of the dataset
    (all splits), which `Vocab.from_text` should be built from.
  """
  check(name, split)
  parts = _parts(name, path, download)
  whole = "".join(parts.values())
  if split in parts:
    return parts[split], whole
  if split == "all":
    return whole, whole
  cut = int(len(whole) * NANOGPT_TRAIN_FRACTION)
  return (whole[:cut] if split == "nanogpt_train" else whole[cut:]), whole


@functools.lru_cache(maxsize=4)
def _parts(name: str, path: str, download: bool) -> dict[str, str]:
  """The dataset's text as ordered pieces whose concatenation is the whole text."""
  if name == "zen":
    return {"all": zen()}
  if name == "txt":
    return {"all": _txt(path)}
  return {s: _tfds_text(name, s, download) for s in _TFDS_SPLITS}


def zen() -> str:
  """The Zen of Python (856 characters), without the print that `import this` does."""
  with contextlib.redirect_stdout(io.StringIO()):
    import this  # pylint: disable=g-import-not-at-top
  return "".join(this.d.get(c, c) for c in this.s)


def _txt(path: str) -> str:
  if not path:
    raise errors.ConfigError("dataset 'txt' needs --config.data.path=FILE.txt")
  if not os.path.isfile(path):
    raise errors.DataError(f"text file not found: {path}")
  try:
    with open(path, encoding="utf-8", newline="") as f:
      return f.read()
  except UnicodeDecodeError as e:
    raise errors.DataError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from e


def _tfds_text(name: str, split: str, download: bool) -> str:
  from gen_jax.data import tfds_records  # pylint: disable=g-import-not-at-top
  texts = [r["text"] for r in tfds_records.read_all(name, split, download)]
  return "".join(t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts)


class WindowLoader:
  """Random windows of a token stream; batch `step` is a pure function of (seed, step).

  Each global batch draws its start positions uniformly from [0, N - T - 1]
  with `np.random.default_rng((seed, step))` (as nanoGPT's get_batch, which
  samples with replacement), then each process keeps its own rows, so P
  processes together see the same global batch as one process, and a resumed
  run sees the batches an uninterrupted one would.

  Attributes:
    block_size: T, the context length; windows hold T + 1 tokens (inputs are
      tokens[:, :-1], targets tokens[:, 1:]).
    global_batch, local_batch: rows per global batch and per process.
  """

  def __init__(self, stream: np.ndarray, block_size: int, global_batch: int, seed: int,
               process_index: int = 0, process_count: int = 1):
    """Args: stream: i32[N] token ids; the rest as the class docstring."""
    self.stream = np.asarray(stream, np.int32).reshape(-1)
    n = len(self.stream)
    if block_size < 1:
      raise errors.ConfigError(f"block_size={block_size} must be at least 1")
    if n < block_size + 2:
      raise errors.DataError(
          f"text of {n} tokens is too short for block_size={block_size}; it needs at "
          f"least {block_size + 2} tokens: lower block_size or use a longer text")
    if global_batch % process_count:
      raise errors.ConfigError(
          f"batch_size={global_batch} is not divisible by {process_count} processes")
    self.block_size = block_size
    self.global_batch = global_batch
    self.local_batch = global_batch // process_count
    self.offset = process_index * self.local_batch
    self.seed = seed
    self.num_starts = n - block_size   # starts 0 .. N - T - 1
    self._span = np.arange(block_size + 1)

  def starts(self, step: int) -> np.ndarray:
    """Start positions of this process's windows of batch `step`: i64[b]."""
    starts = np.random.default_rng((self.seed, step)).integers(
        0, self.num_starts, size=self.global_batch)
    return starts[self.offset:self.offset + self.local_batch]

  def _windows(self, starts: np.ndarray) -> dict:
    return {"tokens": self.stream[starts[..., None] + self._span]}

  def batch(self, step: int) -> dict:
    """This process's rows of global batch `step`: {"tokens": i32[b, T+1]}."""
    return self._windows(self.starts(step))

  def batches(self, step: int, k: int) -> dict:
    """Batches step .. step+k-1 stacked: {"tokens": i32[k, b, T+1]}."""
    return self._windows(np.stack([self.starts(step + j) for j in range(k)]))

  def first(self) -> dict:
    """A fixed batch for initialization: {"tokens": i32[b, T+1]}.

    Global row j starts at j * (T + 1) (wrapped into the valid starts when the
    text is short), so it needs no rng and reads consecutive, non-overlapping text.
    """
    rows = np.arange(self.offset, self.offset + self.local_batch)
    return self._windows(rows * (self.block_size + 1) % self.num_starts)


def eval_windows(stream: np.ndarray, block_size: int) -> tuple[np.ndarray, int]:
  """Non-overlapping windows that score every next-token prediction of a stream once.

  Window i is stream[i*T : i*T + T + 1], so its targets (tokens 1..T of the
  window) are stream[i*T + 1 : (i+1)*T + 1]: together they partition the
  predictions of tokens 1 .. M*T; the final (N - 1) mod T predictions, fewer
  than T, are dropped. Within a window the context grows from 1 to T tokens, so
  this loss is a little above what a sliding window of full contexts would give.

  Args:
    stream: i32[N] token ids.
    block_size: T.

  Returns:
    (windows i32[M, T+1] with M = (N - 1) // T, covered = M * T predicted tokens).
  """
  stream = np.asarray(stream, np.int32).reshape(-1)
  m = (len(stream) - 1) // block_size
  if m < 1:
    raise errors.DataError(
        f"text of {len(stream)} tokens is too short to evaluate with "
        f"block_size={block_size}; it needs at least {block_size + 1} tokens")
  idx = np.arange(m)[:, None] * block_size + np.arange(block_size + 1)
  return stream[idx], m * block_size


def ngram_baselines(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int) -> dict:
  """Cross-entropies of count models, in nats per token, on eval_ids[1:].

  All three score the same targets a language model predicts: eval_ids[1:]
  (the first token has no context, so it is not scored).

    uniform: ln V.
    unigram: p(c) = (n(c) + 1) / (N_train + V), n(c) the count of c in
      train_ids (add-one, so characters unseen in training stay finite).
    bigram: p(c | a) = (n(a, c) + 1) / (n(a, .) + V), n(a, c) the count of the
      pair (a, c) in train_ids and n(a, .) the number of pairs that start with a
      (add-one over the V possible successors).

  On tiny_shakespeare's nanogpt split (V = 65) these are 4.1744, 3.3473 and
  2.4819 nats per character. All 65 characters occur in nanogpt_train, so
  unsmoothed unigram counts give 3.3473 as well (the +1 moves it by 2e-6).

  Args:
    train_ids: int[N_train] ids in [0, V).
    eval_ids: int[N_eval] ids in [0, V), N_eval >= 2.
    vocab_size: V.

  Returns:
    {"uniform": float, "unigram": float, "bigram": float}.
  """
  train = np.asarray(train_ids, np.int64).reshape(-1)
  ev = np.asarray(eval_ids, np.int64).reshape(-1)
  if len(ev) < 2:
    raise errors.DataError("ngram baselines need an eval text of at least 2 tokens")
  v = vocab_size
  uni = np.bincount(train, minlength=v).astype(np.float64)
  log_uni = np.log(uni + 1.0) - np.log(len(train) + v)
  pairs = np.zeros((v, v), np.float64)
  np.add.at(pairs, (train[:-1], train[1:]), 1.0)
  log_bi = np.log(pairs + 1.0) - np.log(pairs.sum(axis=1, keepdims=True) + v)
  return {
      "uniform": math.log(v),
      "unigram": float(-log_uni[ev[1:]].mean()),
      "bigram": float(-log_bi[ev[:-1], ev[1:]].mean()),
  }
