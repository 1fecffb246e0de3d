"""The widened spine: data specs, text streams, weighted means, sample files, init_from, vocab."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment

from gen_jax import config_lib, errors
from gen_jax.data import pipeline, sources, variants
from gen_jax.data import spec as spec_lib
from gen_jax.evaluators import likelihood
from gen_jax.trainers import loop
from gen_jax.utils import sample_files

pytestmark = pytest.mark.usefixtures("cheap_compiles")   # tiny models: compiling is the cost

QUICK = experiment("quickstart.py:smoke")
GPT_SMOKE = experiment("gpt_shakespeare_char.py:smoke")


def test_sources_declare_their_fields():
  digits = sources.load("digits", "train")
  assert digits.spec["x"] == spec_lib.Field((8, 8, 1), "uint8", "image")
  assert digits.spec["y"].modality == "label" and digits.spec["y"].cardinality == 10
  moons = sources.load("moons", "test")
  assert moons.spec["x"].modality == "points" and moons.kind == "points"
  zen = sources.load("zen", "nanogpt_train")
  f = zen.spec["tokens"]
  assert zen.stream and f.modality == "tokens" and f.cardinality == len(f.vocab) == 45
  add = sources.load("addition", "test", options=(("digits", 2), ("num_test", 10)))
  assert add.spec["inputs"].shape == (6,) and add.spec["targets"].shape == (3,)
  assert set(add.arrays) == {"inputs", "targets"}


def test_model_spec_and_variants_follow_the_modality():
  digits = sources.load("digits", "train")
  model = variants.model_spec("grayscale", digits.spec)
  assert model["x"].dtype == "float32" and model["y"].dtype == "int32"
  batch = {"x": jnp.full((2, 8, 8, 1), 255, jnp.uint8), "y": jnp.arange(2, dtype=jnp.int32)}
  out = variants.apply_batch("grayscale", batch, digits.spec, jax.random.key(0))
  assert float(out["x"].max()) == 1.0 and out["y"].dtype == jnp.int32
  tokens = {"tokens": jnp.arange(6, dtype=jnp.int32)[None]}
  zen = sources.load("zen", "nanogpt_train")
  np.testing.assert_array_equal(
      variants.apply_batch("tokens", tokens, zen.spec, jax.random.key(0))["tokens"],
      tokens["tokens"])
  with pytest.raises(errors.ConfigError, match="only variant is 'tokens'"):
    variants.check("grayscale", False, "zen", "text")
  with pytest.raises(errors.ConfigError, match="for text or seq2seq datasets"):
    variants.check("tokens", False, "digits", "image")


def test_text_stream_batches_are_windows_and_eval_covers_the_split():
  config = config_lib.load_config(GPT_SMOKE)
  split = sources.from_config(config.data, config.data.train_split)
  loader = pipeline.train_loader(split, config.data, seed=0)
  t = config.data.block_size
  assert loader.spec["tokens"].shape == (t + 1,)
  b = loader.batch(3)["tokens"]
  assert b.shape == (config.data.batch_size, t + 1) and b.dtype == np.int32
  stream = split.arrays["tokens"]
  for row in b:   # each row is consecutive text
    starts = [i for i in range(len(stream) - t) if np.array_equal(stream[i:i + t + 1], row)]
    assert starts
  val = sources.from_config(config.data, config.data.eval_split)
  arrays, spec, note = pipeline.eval_examples(val, config.data)
  w = arrays["tokens"]
  np.testing.assert_array_equal(w[:, 1:].reshape(-1), val.arrays["tokens"][1:1 + w.size - len(w)])
  assert f"{len(w) * t} of the {len(val.arrays['tokens']) - 1}" in note
  config.data.block_size = 0
  with pytest.raises(errors.ConfigError, match="set data.block_size"):
    pipeline.train_loader(split, config.data, seed=0)


def test_weighted_mean_and_its_standard_error_match_brute_force():
  rng = np.random.default_rng(0)
  v, w = rng.normal(size=50), rng.integers(1, 9, size=50).astype(np.float64)
  acc = likelihood._Accumulator()   # pylint: disable=protected-access
  for i in range(0, 50, 16):   # batches, the last one padded
    sl = slice(i, i + 16)
    n = len(v[sl])
    mask = np.r_[np.ones(n), np.zeros(16 - n)]
    pad = lambda a: np.r_[a, np.zeros(16 - len(a))]   # noqa: E731
    acc.add({"nll": pad(v[sl]), "tokens": pad(w[sl]), "plain": pad(v[sl])}, mask,
            {"nll": "tokens"})
  out = acc.results("e", {}, {"nll": "tokens"}, "here")
  mean = (w * v).sum() / w.sum()
  assert abs(out["e/nll"][0] - mean) < 1e-12
  sem = np.sqrt(((w * (v - mean)) ** 2).sum()) / w.sum()
  assert abs(out["e/nll_sem"][0] - sem) < 1e-12
  assert abs(out["e/plain"][0] - v.mean()) < 1e-12
  assert abs(out["e/plain_sem"][0] - v.std() / np.sqrt(50)) < 1e-12
  assert out["e/tokens_total"][0] == w.sum()
  assert not any("_p" in k for k in out)
  # Percentiles of the unweighted values, padding excluded.
  keep = likelihood._Accumulator(keep=True)   # pylint: disable=protected-access
  for i in range(0, 50, 16):
    n = len(v[i:i + 16])
    keep.add({"plain": np.r_[v[i:i + 16], np.full(16 - n, 1e9)]},
             np.r_[np.ones(n), np.zeros(16 - n)], {})
  q = keep.results("e", {}, {}, "here", quantiles=(50, 99, 100))
  assert q["e/plain_p50"][0] == np.median(v) and q["e/plain_p100"][0] == v.max()
  assert q["e/plain_p99"][0] == np.percentile(v, 99) and "percentile over 50" in q["e/plain_p99"][1]


def test_samples_are_written_by_modality(tmp_path):
  field = spec_lib.Field((4,), "int32", "tokens", 3, ("a", "b", "c"))
  (path,) = sample_files.write(str(tmp_path / "s"), np.array([[0, 1, 2, 5]]), field)
  assert path.endswith(".txt") and open(path).read().strip() == "abc<5>"
  table = spec_lib.Field((2,), "int32", "table", (2, 3))
  (csv,) = sample_files.write(str(tmp_path / "t"), np.array([[1, 2], [0, 1]]), table,
                              columns=("rain", "wet"))
  assert open(csv).read().splitlines() == ["rain,wet", "1,2", "0,1"]
  img = spec_lib.Field((4, 4, 1), "float32", "image")
  (png,) = sample_files.write(str(tmp_path / "i"), np.zeros((4, 4, 4, 1)), img)
  assert png.endswith(".png") and os.path.getsize(png) > 0


def _params(config, workdir):
  run = loop.setup(config, workdir)
  try:
    return loop.init_or_restore(run).params
  finally:
    run.close()


def test_init_from_copies_another_runs_parameters_and_checks_shapes(tmp_path, capsys):
  src = str(tmp_path / "src")
  config = config_lib.load_config(QUICK, ["eval_at_end=False"])
  loop.train(config, src)
  trained = _params(config, src)
  fresh = _params(config, str(tmp_path / "fresh"))
  tuned = config_lib.load_config(QUICK, ["eval_at_end=False", f"init_from.workdir={src}"])
  started = _params(tuned, str(tmp_path / "tuned"))
  jax.tree.map(np.testing.assert_array_equal, started, trained)
  assert not np.array_equal(jax.tree.leaves(fresh)[0], jax.tree.leaves(trained)[0])
  n = len(jax.tree.leaves(trained))
  assert f"initialized {n} of {n} parameter arrays from" in capsys.readouterr().out
  wider = config_lib.load_config(QUICK, [f"init_from.workdir={src}", "model.hidden=(64, 128)"])
  with pytest.raises(errors.ConfigError, match="has shape .* here") as e:
    _params(wider, str(tmp_path / "wider"))
  assert "\n" not in str(e.value)
  missing = config_lib.load_config(QUICK, [f"init_from.workdir={tmp_path / 'none'}"])
  with pytest.raises(errors.GenJaxError, match="init_from: no checkpoint"):
    _params(missing, str(tmp_path / "m"))


def test_a_run_keeps_its_vocabulary_and_refuses_another_text(tmp_path):
  workdir = str(tmp_path / "gpt")
  config = config_lib.load_config(GPT_SMOKE, ["eval_at_end=False", "total_steps=10"])
  loop.train(config, workdir)
  assert os.path.isfile(os.path.join(workdir, "vocab.json"))
  other = tmp_path / "other.txt"
  other.write_text("completely different text with other letters: qqq zzz 0123456789 " * 20)
  changed = config_lib.load_config(GPT_SMOKE, ["data.name=txt", f"data.path={other}",
                                               "sample.prompt=q"])
  with pytest.raises(errors.DataError, match="vocabulary differs"):
    loop.evaluate(changed, workdir)
