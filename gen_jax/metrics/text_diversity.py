"""Diversity of generated token sequences: distinct-n (Li et al. 2016).

distinct-n = (number of distinct n-grams) / (total number of n-grams), the
n-grams taken inside each sequence (none spans two sequences) and counted
over all sequences together. 1 means no n-gram repeats anywhere; a sampler
stuck on one token scores 1 / (total tokens) for n = 1. The value depends on
how many tokens are pooled (longer text repeats more), so compare it only
with a reference of the same number and length of sequences, e.g. windows of
real text (`reference_windows`).
"""
import numpy as np


def ngrams(seqs, n: int) -> np.ndarray:
  """Every n-gram of every sequence: i64[total, n], in order.

  seqs: i[S, L] or a list of 1-D int sequences (lengths may differ; one
  shorter than n contributes none).
  """
  rows = [np.lib.stride_tricks.sliding_window_view(np.asarray(s, np.int64), n)
          for s in seqs if len(s) >= n]
  return np.concatenate(rows) if rows else np.zeros((0, n), np.int64)


def distinct_counts(seqs, n: int) -> tuple[int, int]:
  """(distinct n-grams, total n-grams) over all sequences."""
  grams = ngrams(seqs, n)
  return (len(np.unique(grams, axis=0)) if len(grams) else 0), len(grams)


def distinct_n(seqs, n: int) -> float:
  """Distinct-n in (0, 1]; raises ValueError when no sequence has n tokens."""
  unique, total = distinct_counts(seqs, n)
  if not total:
    raise ValueError(f"distinct-{n} needs a sequence of at least {n} tokens")
  return unique / total


def reference_windows(stream: np.ndarray, num: int, length: int, seed: int) -> np.ndarray:
  """num windows i64[num, length] of a token stream at uniformly drawn start offsets.

  Offsets are drawn with numpy's default_rng(seed), with replacement (windows
  may overlap); raises ValueError if the stream is shorter than `length`.
  """
  stream = np.asarray(stream, np.int64)
  if len(stream) < length:
    raise ValueError(f"the text has {len(stream)} tokens, fewer than a window of {length}")
  starts = np.random.default_rng(seed).integers(0, len(stream) - length + 1, num)
  return stream[starts[:, None] + np.arange(length)]
