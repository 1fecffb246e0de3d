"""Text generation evaluator: distinct-n by hand, a stuck model, and a run of the GPT smoke."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import experiment

from gen_jax import config_lib, errors, parallel
from gen_jax.evaluators import text_generation
from gen_jax.metrics import text_diversity
from gen_jax.trainers import loop
from gen_jax.utils import sample_files

pytestmark = pytest.mark.usefixtures("cheap_compiles")

GPT_SMOKE = experiment("gpt_shakespeare_char.py:smoke")


def test_distinct_n_equals_a_hand_count_and_never_spans_two_sequences():
  seqs = [[1, 2, 1, 2], [2, 1, 3], [5]]
  # 1-grams: 8 in all, distinct {1, 2, 3, 5}.
  assert text_diversity.distinct_counts(seqs, 1) == (4, 8)
  # 2-grams: (1,2) (2,1) (1,2) | (2,1) (1,3): 5, distinct 3; (2,2) across the first boundary
  # and (3,5) across the second are not n-grams.
  assert text_diversity.distinct_counts(seqs, 2) == (3, 5)
  assert text_diversity.distinct_n(seqs, 2) == pytest.approx(3 / 5)
  # 3-grams: (1,2,1) (2,1,2) | (2,1,3): all distinct.
  assert text_diversity.distinct_n(seqs, 3) == 1.0
  assert text_diversity.distinct_n(np.array([[7, 7, 7, 7, 7]]), 1) == pytest.approx(1 / 5)
  assert text_diversity.distinct_counts(seqs, 4) == (1, 1)
  with pytest.raises(ValueError, match="at least 5 tokens"):
    text_diversity.distinct_n(seqs, 5)


def test_reference_windows_are_seeded_slices_of_the_stream():
  stream = np.arange(100) * 3
  w = text_diversity.reference_windows(stream, 6, 5, seed=1)
  assert w.shape == (6, 5)
  for row in w:
    start = row[0] // 3
    np.testing.assert_array_equal(row, stream[start:start + 5])
  np.testing.assert_array_equal(w, text_diversity.reference_windows(stream, 6, 5, seed=1))
  with pytest.raises(ValueError, match="fewer than a window"):
    text_diversity.reference_windows(stream[:4], 1, 5, seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """The GPT smoke, trained and evaluated (its evals include "generation")."""
  workdir = str(tmp_path_factory.mktemp("gpt"))
  config = config_lib.load_config(GPT_SMOKE)
  loop.train(config, workdir)
  return config, workdir


def _context(config, workdir):
  run = loop.setup(config, workdir)
  ts = loop.init_or_restore(run, require_checkpoint=True)
  run.close()
  return loop.eval_context(run, ts, None), ts


def test_the_evaluator_runs_on_the_gpt_smoke_and_writes_its_samples(trained):
  config, workdir = trained
  step = config.total_steps
  with open(os.path.join(workdir, "eval", f"step_{step:08d}.json")) as f:
    saved = json.load(f)
  res, units = saved["results"], saved["units"]
  ec = config.evals.generation
  for n in (1, 2, 3):
    assert 0 < res[f"generation/distinct_{n}"] <= 1
    assert 0 < res[f"generation/distinct_{n}_reference"] <= 1
  # The cross-entropy is the likelihood evaluator's on the same split.
  assert res["generation/nll"] == res["val/nll"] and "nats per token" in units["generation/nll"]
  path = res["generation/samples_file"]
  assert path == os.path.join(workdir, "samples", f"generation_{step:08d}.txt")
  blocks = open(path).read().rstrip("\n").split(sample_files.RULE)[1:]
  assert len(blocks) == len(ec.prompts) * ec.num_samples
  for i, block in enumerate(blocks):
    header, body = block.split("\n", 1)
    prompt = ec.prompts[i // ec.num_samples]
    assert header.startswith(f"# prompt {i // ec.num_samples} {prompt!r}")
    assert body.startswith(prompt) and len(body) == len(prompt) + ec.max_new_tokens
  # The reference is distinct-n of real windows of the validation text, recomputed here.
  ctx, _ = _context(config, workdir)
  stream = ctx.source("nanogpt_val").arrays["tokens"]
  ref = text_diversity.reference_windows(stream, len(blocks), ec.max_new_tokens,
                                         parallel.hash_str("generation"))
  assert res["generation/distinct_2_reference"] == pytest.approx(text_diversity.distinct_n(ref, 2))


def test_a_model_that_repeats_one_character_scores_one_over_its_length(trained):
  config, workdir = trained
  ctx, _ = _context(config, workdir)
  # LayerNorm scale and bias 0 before the tied output layer: every logit is 0, and greedy
  # decoding picks token 0 at every step.
  params = jax.tree.map(lambda x: x, ctx.params)
  params["model"]["ln_f"] = jax.tree.map(jnp.zeros_like, params["model"]["ln_f"])
  ctx.params = params
  ec = ml_collections.ConfigDict(dict(type="text_generation", prompts=("Beautiful", "Simple"),
                                      num_samples=3, max_new_tokens=5, temperature=0.0,
                                      batch_size=8))
  res = text_generation.evaluate(ctx, "stuck", ec)
  total = 2 * 3 * 5
  assert res["stuck/distinct_1"][0] == pytest.approx(1 / total)
  assert res["stuck/distinct_2"][0] == pytest.approx(1 / (2 * 3 * 4))
  text = open(res["stuck/samples_file"][0]).read()
  vocab = ctx.spec["tokens"].vocab
  assert "Beautiful" + vocab[0] * 5 in text and "Simple" + vocab[0] * 5 in text
  assert res["stuck/distinct_1_reference"][0] > 3 / total     # real text is not stuck


def test_prompts_outside_the_vocabulary_or_too_long_are_one_line_errors(trained):
  config, workdir = trained
  ctx, _ = _context(config, workdir)
  ec = ml_collections.ConfigDict(dict(type="text_generation", prompts=("Beautiful", "Ugly~"),
                                      num_samples=2, max_new_tokens=4))
  with pytest.raises(errors.ConfigError, match=r"prompts\[1\].*outside the training vocab") as e:
    text_generation.evaluate(ctx, "g", ec)
  assert "\n" not in str(e.value) and "'~'" in str(e.value)
  ec.update(prompts=("Beautiful",), max_new_tokens=8)
  with pytest.raises(errors.ConfigError, match="exceeds model.block_size=16"):
    text_generation.check("g", ec, config)
  ec.max_new_tokens = 2
  with pytest.raises(errors.ConfigError, match="max_new_tokens must be an integer >= 3"):
    text_generation.check("g", ec, config)
  other = config_lib.load_config(experiment("mlm_shakespeare_char.py:smoke"))
  with pytest.raises(errors.ConfigError, match="needs family 'gpt'"):
    text_generation.check("g", ec, other)
