"""GPT, masked-LM and encoder-decoder families: losses, sampling, errors, sharded meshes."""
import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import experiment, subprocess_env

from gen_jax import config_lib, errors, parallel
from gen_jax.data import sources, text_ops, variants
from gen_jax.inference import sampling
from gen_jax.models import gpt, mlm, seq2seq
from gen_jax.trainers import loop, sgd
from gen_jax.utils import writers

pytestmark = pytest.mark.usefixtures("cheap_compiles")   # tiny models: compiling is the cost

GPT_SMOKE = experiment("gpt_shakespeare_char.py:smoke")
MLM_SMOKE = experiment("mlm_shakespeare_char.py:smoke")
ADD_SMOKE = experiment("seq2seq_addition.py:smoke")


def _family(spec, overrides=(), module=gpt):
  config = config_lib.load_config(spec, list(overrides))
  run = loop.setup(config, "/nonexistent-never-written")
  run.close()
  return config, run, module.make(config, variants.model_spec("tokens", run.spec))


def test_gpt_loss_at_init_is_ln_vocab_and_one_batch_can_be_overfit():
  config, run, family = _family(GPT_SMOKE, ["model.dropout=0.0", "model.n_embd=32"])
  batch = {"tokens": jnp.asarray(run.loader.batch(0)["tokens"])}
  v = run.spec["tokens"].cardinality
  trainer = sgd.make(family, config)
  ts = jax.jit(trainer.init)(jax.random.key(0), batch)
  loss0, _ = family.loss("model", ts.params, ts.state, batch, jax.random.key(1))
  assert abs(float(loss0) - math.log(v)) < 0.1, (float(loss0), math.log(v))
  config.optim.model.update(schedule="constant", lr=1e-2, weight_decay=0.0)
  trainer = sgd.make(family, config)
  step = jax.jit(trainer.step)
  for i in range(150):
    ts, metrics = step(ts, batch, jax.random.key(i))
  assert float(metrics["loss"]) < 0.2, float(metrics["loss"])


def test_gpt_cached_sampling_equals_sampling_by_full_forward():
  config, run, family = _family(GPT_SMOKE, ["sample.temperature=0.7", "sample.top_k=5"])
  batch = {"tokens": jnp.asarray(run.loader.first()["tokens"])}
  params, state = jax.jit(family.init)(jax.random.key(0), batch)
  rng = jax.random.key(3)
  cached = np.asarray(jax.jit(family.sample, static_argnums=3)(params, state, rng, 5))
  net = gpt.build(config.model, run.spec["tokens"].cardinality)
  prompt = jnp.asarray([gpt.encode_prompt(config.sample.prompt, run.spec["tokens"].vocab)] * 5)
  full = sampling.sample_full(lambda t: net.apply({"params": params["model"]}, t), prompt,
                              config.sample.num_tokens, rng, max_len=config.model.block_size,
                              temperature=0.7, top_k=5)
  np.testing.assert_array_equal(cached, np.asarray(full))
  assert cached.shape == (5, len(config.sample.prompt) + config.sample.num_tokens)


@pytest.mark.parametrize("override, message", [
    ("sample.prompt=ROMEO", "outside the training vocabulary"),
    ("sample.num_tokens=40", "exceeds model.block_size"),
    ("data.block_size=32", "exceeds model.block_size"),
    ("model.n_head=3", "divisible by n_head"),
])
def test_gpt_mistakes_fail_with_one_line_naming_the_fix(override, message):
  config = config_lib.load_config(GPT_SMOKE, [override])
  with pytest.raises(errors.ConfigError, match=message) as e:
    loop.setup(config, "/nonexistent-never-written")
  assert "\n" not in str(e.value)


def test_bfloat16_compute_trains_with_float32_master_weights(tmp_path):
  config = config_lib.load_config(GPT_SMOKE, ["model.dtype=bfloat16", "eval_at_end=False"])
  loop.train(config, str(tmp_path))
  run = loop.setup(config, str(tmp_path))
  ts = loop.init_or_restore(run)
  run.close()
  assert {x.dtype for x in jax.tree.leaves(ts.params)} == {jnp.dtype("float32")}
  losses = [r["loss"] for r in writers.read_jsonl(str(tmp_path / "metrics.jsonl"))]
  assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_mlm_loss_is_the_cross_entropy_of_the_selected_positions_only():
  config, run, family = _family(MLM_SMOKE, module=mlm)
  t = config.data.block_size
  batch = {"tokens": jnp.asarray(run.loader.batch(0)["tokens"])}
  params, state = jax.jit(family.init)(jax.random.key(0), batch)
  rng = jax.random.key(5)
  loss, _ = family.loss("model", params, state, batch, rng)
  # By hand: the same masks, the model on the masked inputs, CE averaged over selected only.
  v = run.spec["tokens"].cardinality
  rng_mask, _ = jax.random.split(rng)
  tokens = batch["tokens"][:, :t]
  inputs, sel = text_ops.mlm_mask(rng_mask, tokens, mask_id=v, vocab_size=v, rate=0.15)
  from gen_jax.nn import transformer  # pylint: disable=g-import-not-at-top
  m = config.model
  net = transformer.MaskedLM(vocab_size=v + 1, block_size=m.block_size, n_layer=m.n_layer,
                             n_head=m.n_head, n_embd=m.n_embd, dropout=0.0, bias=m.bias)
  logits = net.apply({"params": params["model"]}, inputs, jnp.ones(inputs.shape, bool))
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, tokens)
  expect = float((ce * sel).sum() / sel.sum())
  assert int(sel.sum()) > 0 and abs(float(loss) - expect) < 1e-5
  assert abs(float(loss) - float(ce.mean())) > 1e-4      # not the mean over every token


def test_mlm_unmasking_fills_every_position_and_keeps_the_prompt():
  config, run, family = _family(MLM_SMOKE, module=mlm)
  batch = {"tokens": jnp.asarray(run.loader.first()["tokens"])}
  params, state = jax.jit(family.init)(jax.random.key(0), batch)
  out = np.asarray(jax.jit(family.sample, static_argnums=3)(params, state, jax.random.key(1), 3))
  v = run.spec["tokens"].cardinality
  prompt = gpt.encode_prompt(config.sample.prompt, run.spec["tokens"].vocab)
  assert out.shape == (3, config.sample.num_tokens) and out.max() < v   # no [MASK] left
  np.testing.assert_array_equal(out[:, :len(prompt)], np.asarray([prompt] * 3))
  assert mlm.unmask_schedule(10, 3).tolist() == [3, 4, 3]


def test_seq2seq_exact_match_is_the_greedy_decoding_of_the_whole_target():
  config, run, family = _family(ADD_SMOKE, module=seq2seq)
  test = sources.from_config(config.data, "test")
  batch = {k: jnp.asarray(v[:16]) for k, v in test.arrays.items()}
  params, state = jax.jit(family.init)(jax.random.key(0), batch)
  # Targets replaced by the model's own greedy decoding are matched exactly; the real
  # targets are not (an untrained model), so exact_match measures the decoding.
  src = batch["inputs"]
  eval_fn = jax.jit(family.eval_fn)   # one compile, not one per op
  out = eval_fn(params, state, batch, None)
  assert float(out["exact_match"].mean()) < 1.0
  decoded = np.asarray(jax.jit(family.sample, static_argnums=3)(params, state, None, 1))
  assert decoded.shape == (1, src.shape[1] + batch["targets"].shape[1])
  own = dict(batch, targets=_greedy_targets(params, batch))
  assert float(eval_fn(params, state, own, None)["exact_match"].mean()) == 1.0


def _greedy_targets(params, batch):
  """Greedy decoding by teacher forcing on its own prefix, one position at a time."""
  logits_fn = jax.jit(_teacher_forced_logits)
  tgt = jnp.zeros_like(batch["targets"])
  for i in range(tgt.shape[1]):
    # With targets = the decoding so far, position i's argmax is the next greedy token.
    logits = logits_fn(params, dict(batch, targets=tgt))
    tgt = tgt.at[:, i].set(jnp.argmax(logits[:, i], -1))
  return tgt


def _teacher_forced_logits(params, batch):
  config = config_lib.load_config(ADD_SMOKE)
  m = config.model
  v = len(sources.from_config(config.data, "test").vocab)
  net = seq2seq.transformer.EncoderDecoder(
      vocab_size=v + 1, src_len=batch["inputs"].shape[1], tgt_len=batch["targets"].shape[1],
      n_layer=m.n_layer, n_dec_layer=m.n_dec_layer, n_head=m.n_head, n_embd=m.n_embd, bias=m.bias)
  tgt = batch["targets"]
  tgt_in = jnp.concatenate([jnp.full(tgt[:, :1].shape, v, tgt.dtype), tgt[:, :-1]], 1)
  return net.apply({"params": params["model"]}, batch["inputs"],
                   batch["inputs"] != m.pad_id, tgt_in)


MESH_SCRIPT = r"""
import json, sys
from gen_jax import config_lib
from gen_jax.trainers import loop

spec, root = sys.argv[1], sys.argv[2]
# (Plain data parallelism over 8 devices is the trainer's and EM's multi-device tests';
# FSDP shards the batch over the same 8 devices and the parameters besides.)
for name, over in [("fsdp8", ["mesh.data=8", "sharding=fsdp"]), ("tp2x4",
                    ["mesh.data=2", "mesh.model=4", "sharding=tensor"])]:
  c = config_lib.load_config(spec, over + ["eval_at_end=False"])
  loop.train(c, f"{root}/{name}")
print("done")
"""


def _final(config, workdir):
  run = loop.setup(config, workdir)
  try:
    return loop.init_or_restore(run, require_checkpoint=True)
  finally:
    run.close()


def test_fsdp_and_tensor_parallel_meshes_give_the_losses_of_one_device(tmp_path):
  config = config_lib.load_config(GPT_SMOKE, ["eval_at_end=False"])
  loop.train(config, str(tmp_path / "one"))
  # Resume is bit-identical: 10 steps, then the same command continued to 20.
  half = config_lib.load_config(GPT_SMOKE, ["eval_at_end=False", "total_steps=10"])
  loop.train(half, str(tmp_path / "resumed"))
  loop.train(config, str(tmp_path / "resumed"))
  jax.tree.map(np.testing.assert_array_equal, _final(config, str(tmp_path / "resumed")).params,
               _final(config, str(tmp_path / "one")).params)
  out = subprocess.run(
      [sys.executable, "-c", MESH_SCRIPT, GPT_SMOKE, str(tmp_path)],
      env=subprocess_env(8),
      capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]

  def losses(name):
    return {r["step"]: r["loss"] for r in writers.read_jsonl(
        str(tmp_path / name / "metrics.jsonl")) if "loss" in r}
  one = losses("one")
  for name in ("fsdp8", "tp2x4"):
    other = losses(name)
    assert other.keys() == one.keys()
    for s in one:
      assert abs(other[s] - one[s]) < 1e-5, (name, s, other[s], one[s])
  # The state really is laid out as asked: FSDP shards parameters over "data".
  with open(tmp_path / "fsdp8" / "config.json") as f:
    assert json.load(f)["sharding"] == "fsdp"


def test_sharding_rule_that_does_not_divide_the_mesh_names_the_fix():
  fake = type("FakeMesh", (), {"shape": {"data": 1, "model": 4}})()   # only .shape is read
  tree = {"h_0": {"attn": {"c_attn": {"kernel": jax.ShapeDtypeStruct((18, 54), jnp.float32)}}}}
  with pytest.raises(errors.ConfigError, match="does not divide it; choose --config.mesh.model"):
    parallel.state_shardings(tree, fake, "tensor", gpt.TP_RULES)
