"""Character text sources, window batches, n-gram baselines, MLM / span corruption, addition."""
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import needs_tfds

from gen_jax import errors
from gen_jax.data import arith, text, text_ops

_TFDS_DIR = os.environ.get("TFDS_DATA_DIR", "")
RAW_TXT = os.path.join(os.path.dirname(_TFDS_DIR.rstrip(os.sep)), "data", "tinyshakespeare",
                       "input.txt") if _TFDS_DIR else ""


def test_vocab_round_trip_and_unknown_characters():
  v = text.Vocab.from_text("hello world\n")
  assert v.chars == tuple(sorted(set("hello world\n"))) and v.size == 9
  ids = v.encode("low\nrow")
  assert ids.dtype == np.int32 and v.decode(ids) == "low\nrow"
  assert text.Vocab.from_json(v.to_json()) == v
  assert v.encode("").shape == (0,) and v.decode(np.zeros(0, np.int32)) == ""
  with pytest.raises(errors.DataError, match=r"2 characters not in the vocabulary \('!', 'é'\)"):
    v.encode("hé!")
  with pytest.raises(errors.DataError, match="special tokens"):
    v.decode([v.size])


def test_zen_ships_with_python(capsys):
  train, whole = text.load("zen", "nanogpt_train")
  val, _ = text.load("zen", "nanogpt_val")
  assert capsys.readouterr().out == ""          # `import this` prints; load must not
  assert whole.startswith("The Zen of Python") and len(whole) == 856
  assert train + val == whole and len(train) == int(856 * 0.9)
  assert text.load("zen", "all")[0] == whole


def test_txt_source_and_errors(tmp_path):
  path = tmp_path / "t.txt"
  path.write_text("abc\r\ndef", encoding="utf-8")
  assert text.load("txt", "all", str(path))[0] == "abc\r\ndef"   # newlines kept as written
  with pytest.raises(errors.ConfigError, match="needs --config.data.path"):
    text.load("txt", "all")
  with pytest.raises(errors.DataError, match="text file not found"):
    text.load("txt", "all", str(tmp_path / "missing.txt"))
  with pytest.raises(errors.ConfigError, match="valid choices: all, nanogpt_train, nanogpt_val"):
    text.load("zen", "train")
  with pytest.raises(errors.ConfigError, match="unknown text dataset"):
    text.load("shakespeare", "train")


def test_missing_tfds_copy_fails_fast(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  text._parts.cache_clear()
  try:
    with pytest.raises(errors.DataError, match="Point TFDS_DATA_DIR at .*download=True"):
      text.load("tiny_shakespeare", "train")
  finally:
    text._parts.cache_clear()


@needs_tfds("tiny_shakespeare")
def test_tiny_shakespeare_splits():
  parts = [text.load("tiny_shakespeare", s)[0] for s in ("train", "validation", "test")]
  train, whole = text.load("tiny_shakespeare", "nanogpt_train")
  val, _ = text.load("tiny_shakespeare", "nanogpt_val")
  assert "".join(parts) == whole and len(whole) == 1_115_394
  assert len(train) == 1_003_854 and len(val) == 111_540 and train + val == whole
  assert train == parts[0]                        # tfds train is nanoGPT's first 90%
  assert text.Vocab.from_text(whole).size == 65


@needs_tfds("tiny_shakespeare")
@pytest.mark.skipif(not os.path.isfile(RAW_TXT),
                    reason="needs Karpathy's input.txt in data/tinyshakespeare/ next to "
                    "TFDS_DATA_DIR")
def test_tfds_text_equals_karpathy_input_txt():
  with open(RAW_TXT, encoding="utf-8", newline="") as f:
    assert f.read() == text.load("tiny_shakespeare", "nanogpt_train")[1]


@needs_tfds("tiny_shakespeare")
def test_nanogpt_ngram_baselines():
  train, whole = text.load("tiny_shakespeare", "nanogpt_train")
  val, _ = text.load("tiny_shakespeare", "nanogpt_val")
  v = text.Vocab.from_text(whole)
  b = text.ngram_baselines(v.encode(train), v.encode(val), v.size)
  assert round(b["uniform"], 3) == 4.174 and round(b["unigram"], 3) == 3.347
  assert round(b["bigram"], 3) == 2.482


def test_ngram_baselines_match_brute_force():
  rng = np.random.default_rng(0)
  v = 5
  train, ev = rng.integers(0, 4, 200), rng.integers(0, 5, 50)    # id 4 unseen in train
  b = text.ngram_baselines(train, ev, v)
  tr, e = train.tolist(), ev.tolist()
  uni = -sum(math.log((tr.count(c) + 1) / (len(tr) + v)) for c in e[1:]) / (len(e) - 1)
  pairs = list(zip(tr[:-1], tr[1:], strict=True))

  def p_bi(a, c):
    return (pairs.count((a, c)) + 1) / (sum(p[0] == a for p in pairs) + v)

  bi = -sum(math.log(p_bi(a, c)) for a, c in zip(e[:-1], e[1:], strict=True)) / (len(e) - 1)
  assert b["uniform"] == pytest.approx(math.log(5))
  assert b["unigram"] == pytest.approx(uni, rel=1e-12)
  assert b["bigram"] == pytest.approx(bi, rel=1e-12)


def test_window_loader_is_a_function_of_seed_and_step():
  stream = np.arange(500, dtype=np.int32)        # token value = position, to check windows
  a = text.WindowLoader(stream, 8, 12, seed=3)
  b = text.WindowLoader(stream, 8, 12, seed=3)
  x = a.batch(41)["tokens"]
  assert x.shape == (12, 9) and x.dtype == np.int32
  np.testing.assert_array_equal(x, b.batch(41)["tokens"])          # random access
  assert not np.array_equal(x, a.batch(42)["tokens"])
  assert not np.array_equal(x, text.WindowLoader(stream, 8, 12, seed=4).batch(41)["tokens"])
  np.testing.assert_array_equal(np.diff(x, axis=1), 1)             # consecutive text
  starts = np.concatenate([a.batch(s)["tokens"][:, 0] for s in range(400)])
  assert starts.min() == 0 and starts.max() == 500 - 9              # the whole start range
  np.testing.assert_array_equal(a.batches(5, 3)["tokens"],
                                np.stack([a.batch(s)["tokens"] for s in (5, 6, 7)]))
  first = a.first()["tokens"]
  np.testing.assert_array_equal(first[:, 0], np.arange(12) * 9 % 491)
  np.testing.assert_array_equal(first, text.WindowLoader(stream, 8, 12, seed=9).first()["tokens"])


def test_window_process_slices_tile_the_global_batch():
  stream = np.random.default_rng(0).integers(0, 65, 1000).astype(np.int32)
  one = text.WindowLoader(stream, 16, 24, seed=0)
  parts = [text.WindowLoader(stream, 16, 24, seed=0, process_index=i, process_count=4)
           for i in range(4)]
  for step in (0, 7, 100):
    np.testing.assert_array_equal(np.concatenate([p.batch(step)["tokens"] for p in parts]),
                                  one.batch(step)["tokens"])
  np.testing.assert_array_equal(np.concatenate([p.first()["tokens"] for p in parts]),
                                one.first()["tokens"])


def test_window_loader_errors():
  with pytest.raises(errors.DataError, match="text of 9 tokens is too short for block_size=8"):
    text.WindowLoader(np.zeros(9, np.int32), 8, 4, 0)
  text.WindowLoader(np.zeros(10, np.int32), 8, 4, 0)                # the shortest allowed
  with pytest.raises(errors.ConfigError, match="not divisible by 4 processes"):
    text.WindowLoader(np.zeros(50, np.int32), 8, 10, 0, 0, 4)


@pytest.mark.parametrize("n,t", [(101, 10), (105, 10), (11, 10), (50, 1)])
def test_eval_windows_partition_the_predictions(n, t):
  stream = np.arange(n, dtype=np.int32)
  windows, covered = text.eval_windows(stream, t)
  assert windows.shape == ((n - 1) // t, t + 1) and covered == windows.shape[0] * t
  targets = windows[:, 1:].reshape(-1)
  np.testing.assert_array_equal(targets, np.arange(1, covered + 1))   # each once, in order
  assert n - 1 - covered < t                                           # only a short tail dropped
  np.testing.assert_array_equal(windows[:, :-1] + 1, windows[:, 1:])
  with pytest.raises(errors.DataError, match="too short to evaluate"):
    text.eval_windows(stream[:t], t)


@pytest.mark.usefixtures("cheap_compiles")
def test_mlm_mask_statistics():
  v, mask_id, rate = 50, 50, 0.15
  tokens = jax.random.randint(jax.random.key(1), (64, 512), 0, v)
  valid = jnp.arange(512)[None, :] < 448                              # last 64 are padding
  inputs, selected = jax.jit(lambda r, x: text_ops.mlm_mask(
      r, x, mask_id=mask_id, vocab_size=v, rate=rate, valid=valid))(jax.random.key(0), tokens)
  inputs, selected, tokens = map(np.asarray, (inputs, selected, tokens))
  n_valid = 64 * 448
  assert not selected[:, 448:].any() and np.array_equal(inputs[:, 448:], tokens[:, 448:])
  assert abs(selected.sum() / n_valid - rate) < 4 * math.sqrt(rate * (1 - rate) / n_valid)
  assert np.array_equal(inputs[~selected], tokens[~selected])        # unselected unchanged
  s = selected.sum()
  masked = (inputs == mask_id) & selected
  changed = (inputs != tokens) & ~masked & selected
  # Random replacements that happen to draw the same token look unchanged: 10% * 1/V of s.
  kept = (inputs == tokens) & selected
  for frac, want in ((masked.sum() / s, 0.8), (changed.sum() / s, 0.1 * (1 - 1 / v)),
                     (kept.sum() / s, 0.1 + 0.1 / v)):
    assert abs(frac - want) < 4 * math.sqrt(want * (1 - want) / s)
  assert inputs[changed].max() < v and inputs.max() <= mask_id        # never a special id


@pytest.mark.usefixtures("cheap_compiles")
@pytest.mark.parametrize("length,density,mean", [(2, 0.15, 3.0), (10, 0.15, 3.0),
                                                 (64, 0.15, 3.0), (100, 0.5, 2.0),
                                                 (37, 0.3, 1.0), (512, 0.15, 3.0)])
def test_span_corruption_round_trip(length, density, mean):
  v = 100
  num_noise, num_spans = text_ops.span_counts(length, density, mean)
  len_in, len_out = text_ops.span_corruption_lengths(length, density, mean)
  fn = jax.jit(lambda r, x: text_ops.span_corruption(
      r, x, sentinel_start=v, noise_density=density, mean_span=mean))
  for seed in range(3):
    tokens = jax.random.randint(jax.random.key(seed + 10), (16, length), 0, v)
    inputs, targets = map(np.asarray, fn(jax.random.key(seed), tokens))
    assert inputs.shape == (16, len_in) and targets.shape == (16, len_out)
    np.testing.assert_array_equal(text_ops.reconstruct(inputs, targets, v), tokens)
    for x, y in zip(inputs, targets, strict=True):
      np.testing.assert_array_equal(x[x >= v], v + np.arange(num_spans))      # in order
      np.testing.assert_array_equal(y[y >= v], v + np.arange(num_spans + 1))
      assert (y < v).sum() == num_noise and y[0] == v and y[-1] == v + num_spans
      assert x[0] < v and x[-1] == v + num_spans - 1     # T5: starts clean, ends with a span
    assert len({tuple(r) for r in inputs}) > 1 or length == 2          # masks differ by row
  assert text_ops.reconstruct(inputs[0], targets[0], v).shape == (length,)


def test_span_counts_follow_t5():
  assert text_ops.span_counts(512, 0.15, 3.0) == (77, 26)      # T5's default setting
  assert text_ops.span_corruption_lengths(512, 0.15, 3.0) == (461, 104)
  assert text_ops.span_counts(10, 0.01, 3.0) == (1, 1)          # at least one noise token
  assert text_ops.span_counts(10, 0.99, 3.0) == (9, 1)          # at least one kept token
  assert text_ops.span_counts(10, 0.5, 1.0) == (5, 5)
  with pytest.raises(errors.ConfigError, match="at least 2 tokens"):
    text_ops.span_counts(1)


@pytest.mark.parametrize("digits", [1, 3])
def test_addition_examples(digits):
  train = arith.addition("train", 2000, digits, seed=0)
  test = arith.addition("test", 300, digits, seed=0)
  len_in, len_out = arith.lengths(digits)
  assert train["inputs"].shape == (2000, len_in) and train["targets"].shape == (2000, len_out)
  for ex in (train, test):
    np.testing.assert_array_equal(arith.decode(ex["targets"]), ex["a"] + ex["b"])
    for row, a, b in zip(ex["inputs"][:50], ex["a"][:50], ex["b"][:50], strict=True):
      assert arith.VOCAB.decode(row) == f"{a}+{b}=".ljust(len_in)
  pairs = lambda ex: {frozenset((a, b)) for a, b in zip(ex["a"], ex["b"], strict=True)}
  assert not pairs(train) & pairs(arith.addition("test", 300, digits, seed=1))   # disjoint
  again = arith.addition("test", 300, digits, seed=0)
  assert all(np.array_equal(again[k], test[k]) for k in test)                   # deterministic
  assert not np.array_equal(arith.addition("test", 300, digits, 1)["a"], test["a"])
  wrong = test["targets"].copy()
  wrong[:, 0] = arith.PAD_ID
  assert (arith.decode(wrong) == -1).all()
  with pytest.raises(errors.ConfigError, match="valid choices: test, train"):
    arith.addition("val", 1, digits, 0)
