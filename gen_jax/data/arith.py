"""Integer addition as a data-free sequence-to-sequence sanity task.

An example reads "a+b=" right-padded with PAD to Lin = 2 * digits + 2 tokens,
and its target is a + b written with exactly digits + 1 digits, zero-padded on
the left ("0579"), so every target position is a digit and exact match is
equality of whole rows. a and b are uniform integers in [0, 10**digits).

Train and test are disjoint: whether a pair belongs to test is a fixed hash of
the unordered pair {a, b} (about 10% of pairs), independent of the seed, so no
test sum, nor its commuted form b+a, appears in any train draw under any seed.
Each split then samples its pairs uniformly (with replacement) from a
generator seeded by (seed, split).
"""
import numpy as np

from gen_jax import errors
from gen_jax.data.text import Vocab

# Digits first, so a digit's id is its value.
VOCAB = Vocab(tuple("0123456789+= "))
PAD_ID = VOCAB.size - 1             # the space
PLUS_ID, EQUALS_ID = 10, 11
SPLITS = ("train", "test")
TEST_FRACTION = 0.1
MAX_DIGITS = 9                      # a * 10**digits + b must fit in int64


def lengths(digits: int) -> tuple[int, int]:
  """(Lin, Lout) = (2 * digits + 2, digits + 1)."""
  return 2 * digits + 2, digits + 1


def _hash(x: np.ndarray) -> np.ndarray:
  """splitmix64's finalizer: a fixed, well-mixed u64 hash of u64[...]."""
  x = x.astype(np.uint64)
  with np.errstate(over="ignore"):
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


def is_test(a: np.ndarray, b: np.ndarray, digits: int) -> np.ndarray:
  """Whether the pairs (a, b): int[...] belong to the test split: bool[...]."""
  # Cast both before mixing: numpy promotes uint64 with int64 to float64.
  lo, hi = np.minimum(a, b).astype(np.uint64), np.maximum(a, b).astype(np.uint64)
  key = lo * np.uint64(10**digits) + hi
  return _hash(key + np.uint64(digits)) < np.uint64(int(TEST_FRACTION * 2.0**64))


def _digits_of(x: np.ndarray, width: int) -> np.ndarray:
  """Decimal digits of x: int[n] as i32[n, width], most significant first."""
  powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
  return (x[:, None] // powers % 10).astype(np.int32)


def _num_digits(x: np.ndarray) -> np.ndarray:
  """Decimal length of x: int[n] >= 0 as i64[n] (0 has one digit)."""
  count = np.ones(len(x), np.int64)
  for p in range(1, MAX_DIGITS + 1):
    count += x >= 10**p
  return count


def _encode_inputs(a: np.ndarray, b: np.ndarray, digits: int) -> np.ndarray:
  """Ids of "a+b=" right-padded with PAD: i32[n, 2*digits+2]."""
  len_in, _ = lengths(digits)
  la, lb = _num_digits(a)[:, None], _num_digits(b)[:, None]
  da, db = _digits_of(a, digits), _digits_of(b, digits)
  j = np.arange(len_in)[None]
  # Operand digits sit right-aligned in da/db, so column j of "a" is digit
  # digits - la + j; indices outside each field are clipped and masked out.
  a_digit = np.take_along_axis(da, np.clip(digits - la + j, 0, digits - 1), axis=1)
  b_digit = np.take_along_axis(db, np.clip(digits - lb + j - la - 1, 0, digits - 1), axis=1)
  rows = np.full((len(a), len_in), PAD_ID, np.int32)
  rows = np.where(j < la, a_digit, rows)
  rows = np.where(j == la, PLUS_ID, rows)
  rows = np.where((j > la) & (j <= la + lb), b_digit, rows)
  return np.where(j == la + lb + 1, EQUALS_ID, rows).astype(np.int32)


def addition(split: str, n: int, digits: int, seed: int) -> dict:
  """n addition examples of one split, a pure function of (split, n, digits, seed).

  Args:
    split: "train" or "test".
    n: number of examples.
    digits: the most digits of each operand, 1..9.
    seed: sampling seed (split membership does not depend on it).

  Returns:
    {"inputs": i32[n, 2*digits+2], "targets": i32[n, digits+1], "a": i64[n],
     "b": i64[n]}; ids index `VOCAB`.
  """
  if split not in SPLITS:
    raise errors.ConfigError(errors.choices("split of addition:", split, SPLITS))
  if not 1 <= digits <= MAX_DIGITS:
    raise errors.ConfigError(f"addition digits={digits} must lie in 1..{MAX_DIGITS}")
  rng = np.random.default_rng((seed, SPLITS.index(split)))
  want_test = split == "test"
  a_parts, b_parts, have = [], [], 0
  # Rejection sampling keeps pairs uniform within the split; drawing
  # several times n per round makes one or two rounds the usual case.
  while have < n:
    m = max(64, 4 * (n - have) * (10 if want_test else 1))
    a = rng.integers(0, 10**digits, m)
    b = rng.integers(0, 10**digits, m)
    keep = is_test(a, b, digits) == want_test
    a_parts.append(a[keep])
    b_parts.append(b[keep])
    have += int(keep.sum())
  a = np.concatenate(a_parts)[:n]
  b = np.concatenate(b_parts)[:n]
  return {"inputs": _encode_inputs(a, b, digits),
          "targets": _digits_of(a + b, digits + 1), "a": a, "b": b}


def decode(targets) -> np.ndarray:
  """The integers of target rows, for exact-match scoring: int[n, W] -> i64[n].

  A row holding any non-digit id decodes to -1, which matches no sum.
  """
  t = np.atleast_2d(np.asarray(targets)).astype(np.int64)
  powers = 10 ** np.arange(t.shape[1] - 1, -1, -1, dtype=np.int64)
  value = (t * powers).sum(axis=1)
  return np.where(((t >= 0) & (t <= 9)).all(axis=1), value, -1)
