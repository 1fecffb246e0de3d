"""Sources, variants and the in-memory loader."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import needs_tfds

from gen_jax import errors
from gen_jax.data import pipeline, sources, variants


def test_loader_order_is_a_function_of_seed_and_step():
  x = np.arange(103)
  a = pipeline.Loader({"x": x}, 10, seed=3)
  b = pipeline.Loader({"x": x}, 10, seed=3)
  assert a.steps_per_epoch == 10
  np.testing.assert_array_equal(a.batch(37)["x"], b.batch(37)["x"])   # random access
  epoch = np.concatenate([a.batch(s)["x"] for s in range(10)])
  assert len(set(epoch)) == 100                                        # no repeats
  assert not np.array_equal(a.batch(0)["x"], a.batch(10)["x"])         # reshuffled
  np.testing.assert_array_equal(a.batches(5, 3)["x"],
                                np.stack([a.batch(s)["x"] for s in (5, 6, 7)]))


def test_process_slices_tile_the_global_batch():
  x = np.arange(1000)
  one = pipeline.Loader({"x": x}, 24, seed=0)
  parts = [pipeline.Loader({"x": x}, 24, seed=0, process_index=i, process_count=4)
           for i in range(4)]
  for step in (0, 7, 100):
    np.testing.assert_array_equal(np.concatenate([p.batch(step)["x"] for p in parts]),
                                  one.batch(step)["x"])


def test_eval_batches_cover_every_example_once():
  x = np.arange(23)
  seen, weight = [], 0.0
  for i in range(2):
    for b, mask in pipeline.eval_batches({"x": x}, 10, i, 2):
      seen += list(b["x"][mask > 0])
      weight += mask.sum()
  assert sorted(seen) == list(range(23)) and weight == 23


def test_loader_rejects_impossible_batches():
  with pytest.raises(errors.ConfigError, match="exceeds the 5 training examples"):
    pipeline.Loader({"x": np.zeros(5)}, 10, 0)
  with pytest.raises(errors.ConfigError, match="not divisible by 4 processes"):
    pipeline.Loader({"x": np.zeros(50)}, 10, 0, 0, 4)


def test_digits_are_embedded_and_rescaled():
  train, test = sources.load("digits", "train"), sources.load("digits", "test")
  assert train.x.shape == (1500, 8, 8, 1) and test.x.shape == (297, 8, 8, 1)
  assert train.x.dtype == np.uint8 and train.x.max() == 255 and not train.binary
  assert set(np.unique(train.y)) == set(range(10))
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  d = datasets.load_digits()     # the reference: read without importing scikit-learn
  pixels, y = sources.digits_arrays()
  np.testing.assert_array_equal(pixels, d.images)
  np.testing.assert_array_equal(y, d.target)
  np.testing.assert_array_equal(np.concatenate([train.y, test.y]), d.target)
  np.testing.assert_array_equal(np.concatenate([train.x, test.x])[..., 0],
                                np.round(d.images * (255.0 / 16.0)).astype(np.uint8))


def test_npz_source(tmp_path):
  path = tmp_path / "d.npz"
  np.savez(path, x_train=np.full((6, 4, 4), 7, np.uint8), y_train=np.arange(6))
  s = sources.load("npz", "train", str(path))
  assert s.x.shape == (6, 4, 4, 1) and list(s.y) == list(range(6))
  with pytest.raises(errors.DataError, match="has no array 'x_test'; arrays present"):
    sources.load("npz", "test", str(path))


def test_variants_are_named_and_checked():
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2000, 4)), jnp.uint8)
  rng = jax.random.key(0)
  g = variants.apply("grayscale", x, rng)
  assert float(g.min()) >= 0 and float(g.max()) <= 1
  b1, b2 = variants.apply("binarized_dynamic", x, rng), variants.apply(
      "binarized_dynamic", x, jax.random.key(1))
  assert set(np.unique(b1)) == {0.0, 1.0} and not np.array_equal(b1, b2)  # resampled
  np.testing.assert_allclose(b1.mean(), g.mean(), atol=0.01)                # E[b] = x/255
  d = variants.apply("dequantized_8bit", x, rng)
  np.testing.assert_array_equal(np.floor(np.asarray(d) * 256), np.asarray(x))  # same bin
  with pytest.raises(errors.ConfigError, match="already binary"):
    variants.check("grayscale", True, "binarized_mnist")


def test_bernoulli_u8_has_the_probability_of_each_pixel_value_and_independent_halves():
  """Every 8-bit value v gives ones at rate v / 255 (exactly 0 and 1 at the ends); the
  two pixels that share a random word (its two 16-bit halves) are uncorrelated."""
  v = jnp.tile(jnp.arange(256, dtype=jnp.uint8), (2000, 1))          # u8[2000, 256]
  bits = np.asarray(variants.bernoulli_u8(jax.random.key(0), v), np.float64)
  assert set(np.unique(bits)) == {0.0, 1.0}
  rate, p = bits.mean(0), np.arange(256) / 255.0
  assert rate[0] == 0.0 and rate[255] == 1.0
  se = np.sqrt(p * (1 - p) / bits.shape[0]) + 1e-12
  assert np.all(np.abs(rate - p) < 5 * se + 2.0 ** -16), np.max(np.abs(rate - p) / se)
  # Element i and element i + n/2 come from the same threefry word.
  half = np.asarray(variants.bernoulli_u8(jax.random.key(1), jnp.full((4000, 2), 128, jnp.uint8)),
                    np.float64).reshape(-1)
  a, b = half[:half.size // 2], half[half.size // 2:]
  assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(a.size)
  # Neighbouring words (consecutive hash counters) and two keys are uncorrelated too.
  assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 4 / np.sqrt(a.size)
  other = np.asarray(variants.bernoulli_u8(jax.random.key(2), jnp.full((4000, 2), 128, jnp.uint8)),
                     np.float64).reshape(-1)
  assert abs(np.corrcoef(half, other)[0, 1]) < 4 / np.sqrt(half.size)
  assert 0.45 < (half != other).mean() < 0.55


def test_uniform_u16_is_uniform_in_both_bytes_for_every_key():
  """Chi-square over 256 bins of the high and of the low byte of 2^18 hashed
  uniforms, for 6 keys: a biased, stuck or short-period hash fails."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  for k in range(6):
    u = np.asarray(variants.uniform_u16(jax.random.key(10 + k), 1 << 18))
    assert u.min() >= 0 and u.max() < 65536
    for byte in (u >> 8, u & 255):
      counts = np.bincount(byte, minlength=256)
      assert stats.chisquare(counts).pvalue > 1e-4, (k, stats.chisquare(counts))
    assert len(np.unique(u)) > 0.975 * 65536   # 2^18 draws cover 1 - e^-4 = 98.2% of the values on average


def test_dynamic_test_set_is_binarized_once_with_a_fixed_seed():
  x = np.random.default_rng(0).integers(0, 256, (50, 8, 8, 1)).astype(np.uint8)
  a, va = variants.eval_arrays("binarized_dynamic", x)
  b, _ = variants.eval_arrays("binarized_dynamic", x)
  assert va == "binarized_static" and np.array_equal(a, b) and set(np.unique(a)) == {0, 1}


@needs_tfds("mnist")
def test_tfds_mnist_offline():
  s = sources.load("mnist", "test")
  assert s.x.shape == (10000, 28, 28, 1) and s.x.dtype == np.uint8 and len(s.y) == 10000


@needs_tfds("binarized_mnist")
def test_tfds_binarized_mnist_is_binary():
  s = sources.load("binarized_mnist", "validation")
  assert s.binary and s.x.shape == (10000, 28, 28, 1) and set(np.unique(s.x)) == {0, 1}


@needs_tfds("mnist")
def test_decoded_cache_equals_the_decode_and_follows_the_files(tmp_path, monkeypatch):
  """The decoded-array cache returns what tfds decodes, is not read once its source files
  change, survives a damaged cache file, and is off when asked."""
  import glob  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top

  from gen_jax.data import tfds_records  # pylint: disable=g-import-not-at-top
  # A private copy of MNIST's test split, so its modification time can change.
  src = glob.glob(os.path.join(os.environ["TFDS_DATA_DIR"], "mnist", "*"))[0]
  dst = tmp_path / "tfds" / "mnist" / os.path.basename(src)
  dst.mkdir(parents=True)
  for f in glob.glob(os.path.join(src, "*.json")) + glob.glob(os.path.join(src, "*-test.*")):
    shutil.copy(f, dst)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  monkeypatch.setenv(tfds_records.CACHE_ENV, str(tmp_path / "cache"))
  records = tfds_records.read_all("mnist", "test")
  x = np.stack([r["image"] for r in records])
  y = np.asarray([r["label"] for r in records])
  first = tfds_records.read_images("mnist", "test")
  path = tfds_records.cache_path("mnist", "test")
  assert os.path.isfile(path) and first["x"].shape == (10000, 28, 28, 1)
  decodes = []
  real_read_all = tfds_records.read_all
  monkeypatch.setattr(tfds_records, "read_all", lambda *a: decodes.append(a) or real_read_all(*a))
  again = tfds_records.read_images("mnist", "test")
  assert not decodes, "a cache hit decoded again"
  np.testing.assert_array_equal(again["x"], x)
  np.testing.assert_array_equal(again["y"], y)
  assert again["x"].dtype == np.uint8 and again["y"].dtype == np.int32
  # A changed source file has another fingerprint: decoded again, into a new file.
  shard = glob.glob(str(dst / "*-test.*"))[0]
  os.utime(shard, ns=(os.stat(shard).st_atime_ns, os.stat(shard).st_mtime_ns + 10**9))
  assert tfds_records.cache_path("mnist", "test") != path
  np.testing.assert_array_equal(tfds_records.read_images("mnist", "test")["x"], x)
  assert len(decodes) == 1 and os.path.isfile(tfds_records.cache_path("mnist", "test"))
  # A damaged cache file is decoded again and rewritten.
  with open(tfds_records.cache_path("mnist", "test"), "wb") as f:
    f.write(b"not an npz")
  np.testing.assert_array_equal(tfds_records.read_images("mnist", "test")["y"], y)
  assert len(decodes) == 2
  np.testing.assert_array_equal(np.load(tfds_records.cache_path("mnist", "test"))["y"], y)
  # Off: nothing is written or read.
  monkeypatch.setenv(tfds_records.CACHE_ENV, "off")
  assert tfds_records.cache_path("mnist", "test") == ""
  tfds_records.read_images("mnist", "test")
  assert len(decodes) == 3
