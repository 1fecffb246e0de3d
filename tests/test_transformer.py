"""Transformer blocks: KV cache, attention masks, init loss, mixed precision, nanoGPT parity.

Most tests use O(1) random parameters instead of the N(0, 0.02) init (nonzero
biases, LayerNorm scales away from 1): at the real init attention is nearly
uniform and every logit is near 0, which would hide masking and mapping bugs.
Drawing them with numpy from `eval_shape` also skips compiling `init`.
"""
import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax.nn import transformer as tfm

pytestmark = pytest.mark.usefixtures("cheap_compiles")

V, BLOCK, L, H, D = 11, 12, 2, 2, 16


def _random_params(model, *args, seed: int, std: float = 0.3):
  """f32 params shaped like `model.init(key, *args)`: N(0, std), LayerNorm scales 1 + N(0, std)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), *args)["params"]
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    x = std * rng.standard_normal(leaf.shape).astype(np.float32)
    return jnp.asarray(x + 1.0 if path[-1].key == "scale" else x)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _tokens(seed: int, shape, vocab: int = V) -> np.ndarray:
  # numpy, so that slicing in the tests does not compile an XLA op per slice
  return np.random.default_rng(seed).integers(0, vocab, shape, dtype=np.int32)


def _bump(tokens: np.ndarray, index, vocab: int = V) -> np.ndarray:
  """A copy with tokens[index] replaced by a different token each."""
  out = tokens.copy()
  out[index] = (out[index] + 1) % vocab
  return out


def _valid(b: int, t: int, row: int, first_pad: int) -> np.ndarray:
  """bool[b, t], all True except row `row` from `first_pad` on."""
  valid = np.ones((b, t), bool)
  valid[row, first_pad:] = False
  return valid


def _assert_changed(a, b, min_diff: float = 1e-3):
  assert float(jnp.max(jnp.abs(a - b))) > min_diff


@pytest.fixture(scope="module")
def gpt():
  model = tfm.GPT(V, BLOCK, L, H, D)
  params = _random_params(model, jnp.zeros((1, BLOCK), jnp.int32), seed=1)
  forward = jax.jit(lambda p, t: model.apply({"params": p}, t))
  decode = jax.jit(lambda p, t, c, pos: model.apply({"params": p}, t, c, pos,
                                                    method=model.decode))
  return model, params, forward, decode


def test_parameter_paths(gpt):
  _, params, _, _ = gpt
  assert set(params) == {"wte", "wpe", "ln_f", "h_0", "h_1"}
  block = params["h_0"]
  assert block["attn"]["c_attn"]["kernel"].shape == (D, 3 * D)
  assert block["attn"]["c_proj"]["kernel"].shape == (D, D)
  assert block["mlp"]["c_fc"]["kernel"].shape == (D, 4 * D)
  assert block["mlp"]["c_proj"]["kernel"].shape == (4 * D, D)
  assert set(block["ln_1"]) == {"scale", "bias"}
  assert params["wte"]["embedding"].shape == (V, D)
  assert params["wpe"]["embedding"].shape == (BLOCK, D)

  ed = tfm.EncoderDecoder(V, 8, 6, 2, 1, H, D, bias=False)
  shapes = jax.eval_shape(ed.init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32),
                          jnp.ones((1, 8), bool), jnp.zeros((1, 6), jnp.int32))["params"]
  assert set(shapes) == {"wte", "enc_wpe", "dec_wpe", "enc_ln_f", "dec_ln_f",
                         "enc_h_0", "enc_h_1", "dec_h_0"}
  dec = shapes["dec_h_0"]
  assert set(dec) == {"ln_1", "attn", "ln_cross", "cross_attn", "ln_2", "mlp"}
  assert set(dec["cross_attn"]) == {"c_q", "c_kv", "c_proj"}
  assert dec["cross_attn"]["c_kv"]["kernel"].shape == (D, 2 * D)
  assert set(dec["ln_cross"]) == {"scale"}   # bias=False drops LayerNorm biases too
  assert "bias" not in dec["cross_attn"]["c_q"]


def test_gpt_kv_cache_matches_full_forward(gpt):
  _, params, forward, decode = gpt
  b, p = 2, 6
  tokens = _tokens(2, (b, BLOCK))
  cache = tfm.init_cache(L, H, D // H, b, BLOCK)

  def check_cache(cache, n):
    assert int(cache["index"]) == n
    for name in ("k", "v"):
      kv = np.asarray(cache[name])                     # [L, B, H, max_len, Dh]
      assert np.all(np.abs(kv[:, :, :, :n]).sum(-1) > 0), "every fed position is written"
      np.testing.assert_array_equal(kv[:, :, :, n:], 0.0)

  logits, cache = decode(params, tokens[:, :p], cache, 0)
  check_cache(cache, p)
  np.testing.assert_allclose(logits, forward(params, tokens[:, :p]), atol=1e-5)
  for t in range(p, BLOCK):
    step, cache = decode(params, tokens[:, t:t + 1], cache, t)
    check_cache(cache, t + 1)
    full = forward(params, tokens[:, :t + 1])
    assert step.shape == (b, 1, V) and step.dtype == jnp.float32
    np.testing.assert_allclose(step[:, 0], full[:, t], atol=1e-5)


def test_gpt_causal_receptive_field(gpt):
  model, params, _, _ = gpt
  t = 8
  x = jax.random.normal(jax.random.key(3), (1, t, D))
  r = jax.random.normal(jax.random.key(4), (V,))  # a random readout so no direction cancels

  def readout(x):
    return model.apply({"params": params}, x, method=model.from_embeddings)[0] @ r  # [T]

  jac = jax.jit(jax.jacrev(readout))(x)                # [T_out, 1, T_in, D]
  sensitivity = np.abs(np.asarray(jac[:, 0])).sum(-1)  # [i, j]
  np.testing.assert_array_equal(sensitivity > 0, np.tril(np.ones((t, t), bool)))


def test_masked_lm_bidirectional_and_padding():
  model = tfm.MaskedLM(V, BLOCK, L, H, D)
  t = 10
  tokens = _tokens(5, (2, t))
  valid = _valid(2, t, row=1, first_pad=7)
  params = _random_params(model, tokens, valid, seed=6)
  f = jax.jit(lambda tok, val: model.apply({"params": params}, tok, val))
  logits = f(tokens, valid)
  assert logits.shape == (2, t, V)

  # Output 0 sees the last input.
  _assert_changed(f(_bump(tokens, (0, t - 1)), valid)[0, 0], logits[0, 0])

  # Padding tokens are invisible to valid positions ...
  repadded = _bump(tokens, (1, slice(7, None)))
  out = f(repadded, valid)
  np.testing.assert_allclose(out[1, :7], logits[1, :7], atol=1e-6)
  np.testing.assert_allclose(out[0], logits[0], atol=1e-6)
  # ... but the same change is visible when those positions are valid.
  all_valid = np.ones_like(valid)
  _assert_changed(f(repadded, all_valid)[1, :7], f(tokens, all_valid)[1, :7])


def test_encoder_decoder_cache_causality_and_padding():
  s, t, b = 8, 6, 2
  model = tfm.EncoderDecoder(V, s, t, n_layer=2, n_dec_layer=2, n_head=H, n_embd=D)
  src, tgt = _tokens(7, (b, s)), _tokens(8, (b, t))
  src_valid = _valid(b, s, row=1, first_pad=5)
  params = _random_params(model, src, src_valid, tgt, seed=9)
  variables = {"params": params}
  forward = jax.jit(lambda src, val, tgt: model.apply(variables, src, val, tgt))
  encode = jax.jit(lambda src, val: model.apply(variables, src, val, method=model.encode))
  decode = jax.jit(lambda tgt, enc, val, cache, pos: model.apply(
      variables, tgt, enc, val, cache, pos, method=model.decode))
  teacher = forward(src, src_valid, tgt)
  assert teacher.shape == (b, t, V)

  # Cached decoding: prefill 2 target tokens, then one at a time.
  enc = encode(src, src_valid)
  assert enc.shape == (b, s, D) and enc.dtype == jnp.float32
  cache = tfm.init_cache(2, H, D // H, b, t)
  logits, cache = decode(tgt[:, :2], enc, src_valid, cache, 0)
  assert int(cache["index"]) == 2
  np.testing.assert_allclose(logits, teacher[:, :2], atol=1e-5)
  for i in range(2, t):
    step, cache = decode(tgt[:, i:i + 1], enc, src_valid, cache, i)
    assert int(cache["index"]) == i + 1
    np.testing.assert_allclose(step[:, 0], teacher[:, i], atol=1e-5)

  # Causal decoder: a change at target position 3 reaches positions >= 3 only.
  out = forward(src, src_valid, _bump(tgt, (slice(None), 3)))
  np.testing.assert_allclose(out[:, :3], teacher[:, :3], atol=1e-6)
  _assert_changed(out[:, 3], teacher[:, 3])
  _assert_changed(out[:, 5], teacher[:, 5])

  # Padded source tokens are invisible; a valid one is not.
  out = forward(_bump(src, (1, slice(5, None))), src_valid, tgt)
  np.testing.assert_allclose(out, teacher, atol=1e-6)
  _assert_changed(forward(_bump(src, (1, 4)), src_valid, tgt)[1], teacher[1])


@pytest.fixture(scope="module")
def gpt65():
  model = tfm.GPT(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=32)
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32), jnp.int32))["params"]
  return model, params


def test_init_loss_is_log_vocab_and_init_scales(gpt65):
  model, params = gpt65
  tokens = _tokens(10, (8, 33), 65)
  logits = jax.jit(model.apply)({"params": params}, tokens[:, :-1])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()
  assert abs(float(loss) - math.log(65)) < 0.1

  block = params["h_1"]
  np.testing.assert_allclose(np.std(block["attn"]["c_attn"]["kernel"]), 0.02, rtol=0.1)
  np.testing.assert_allclose(np.std(params["wte"]["embedding"]), 0.02, rtol=0.1)
  proj_std = 0.02 / math.sqrt(2 * 2)
  np.testing.assert_allclose(np.std(block["attn"]["c_proj"]["kernel"]), proj_std, rtol=0.1)
  np.testing.assert_allclose(np.std(block["mlp"]["c_proj"]["kernel"]), proj_std, rtol=0.1)
  np.testing.assert_array_equal(block["mlp"]["c_fc"]["bias"], 0.0)


def test_dropout_is_active_only_when_not_deterministic(gpt):
  _, params, forward, _ = gpt
  model = tfm.GPT(V, BLOCK, L, H, D, dropout=0.5)
  tokens = _tokens(11, (2, BLOCK))
  apply = jax.jit(lambda key, deterministic: model.apply(
      {"params": params}, tokens, deterministic=deterministic, rngs={"dropout": key}),
      static_argnums=1)
  np.testing.assert_allclose(apply(jax.random.key(0), True), forward(params, tokens), atol=1e-5)
  _assert_changed(apply(jax.random.key(0), False), apply(jax.random.key(1), False))


def test_bf16_compute_keeps_f32_params_and_logits(gpt):
  _, _, forward, _ = gpt
  model = tfm.GPT(V, BLOCK, L, H, D, dtype=jnp.bfloat16)
  tokens = _tokens(12, (2, BLOCK))
  shapes = jax.eval_shape(model.init, jax.random.key(0), tokens)["params"]
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes))
  # Smaller than the other tests' parameters: logits O(1), where 5e-2 is a few bf16 ulps.
  params = _random_params(tfm.GPT(V, BLOCK, L, H, D), tokens, seed=14, std=0.1)
  logits, state = jax.jit(lambda p, t: model.apply({"params": p}, t,
                                                   capture_intermediates=True))(params, tokens)
  assert logits.dtype == jnp.float32
  c_attn_out = state["intermediates"]["h_0"]["attn"]["c_attn"]["__call__"][0]
  assert c_attn_out.dtype == jnp.bfloat16
  reference = forward(params, tokens)
  np.testing.assert_allclose(logits, reference, atol=5e-2)
  assert not np.array_equal(np.asarray(logits), np.asarray(reference))


def test_matches_pytorch_nanogpt(gpt):
  torch = pytest.importorskip("torch", reason="torch is needed for the nanoGPT reference")
  nnt, F = torch.nn, torch.nn.functional
  _, params, forward, _ = gpt

  class CausalSelfAttention(nnt.Module):
    def __init__(self):
      super().__init__()
      self.c_attn, self.c_proj = nnt.Linear(D, 3 * D), nnt.Linear(D, D)

    def forward(self, x):
      b, t, c = x.shape
      q, k, v = (a.view(b, t, H, c // H).transpose(1, 2)
                 for a in self.c_attn(x).split(c, dim=2))
      y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
      return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))

  class MLP(nnt.Module):
    def __init__(self):
      super().__init__()
      self.c_fc, self.c_proj = nnt.Linear(D, 4 * D), nnt.Linear(4 * D, D)

    def forward(self, x):
      return self.c_proj(F.gelu(self.c_fc(x)))

  class Block(nnt.Module):
    def __init__(self):
      super().__init__()
      self.ln_1, self.attn = nnt.LayerNorm(D), CausalSelfAttention()
      self.ln_2, self.mlp = nnt.LayerNorm(D), MLP()

    def forward(self, x):
      x = x + self.attn(self.ln_1(x))
      return x + self.mlp(self.ln_2(x))

  class NanoGPT(nnt.Module):
    def __init__(self):
      super().__init__()
      self.wte, self.wpe = nnt.Embedding(V, D), nnt.Embedding(BLOCK, D)
      self.h = nnt.ModuleList([Block() for _ in range(L)])
      self.ln_f = nnt.LayerNorm(D)

    def forward(self, idx):
      x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
      for block in self.h:
        x = block(x)
      return F.linear(self.ln_f(x), self.wte.weight)  # tied head

  state = {}
  for path, value in flax.traverse_util.flatten_dict(params).items():
    names = [n.replace("h_", "h.") if n.startswith("h_") else n for n in path[:-1]]
    value = np.asarray(value)
    if path[-1] == "kernel":   # flax [in, out] -> torch Linear [out, in]
      value = value.T
    leaf = "bias" if path[-1] == "bias" else "weight"
    state[".".join([*names, leaf])] = torch.tensor(value)
  ref = NanoGPT()
  ref.load_state_dict(state, strict=True)

  tokens = _tokens(13, (2, BLOCK))
  with torch.no_grad():
    expected = ref(torch.tensor(np.asarray(tokens), dtype=torch.long)).numpy()
  np.testing.assert_allclose(forward(params, tokens), expected, atol=1e-4)


def test_gelu_is_the_exact_gelu_in_values_and_gradients():
  x = jnp.linspace(-8.0, 8.0, 2001)
  np.testing.assert_allclose(tfm.gelu_exact(x), jax.nn.gelu(x, approximate=False),
                             atol=1e-6, rtol=1e-6)
  g = jax.vmap(jax.grad(tfm.gelu_exact))(x)
  ref = jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False)))(x)
  np.testing.assert_allclose(g, ref, atol=5e-6, rtol=1e-5)
  # Not the tanh approximation, which differs by up to ~5e-4.
  assert float(jnp.abs(tfm.gelu_exact(x) - jax.nn.gelu(x, approximate=True)).max()) > 1e-4


def test_rows_dense_is_dense_in_parameters_values_and_gradients():
  x = jax.random.normal(jax.random.key(3), (3, 5, 7))
  ref, rows = flax.linen.Dense(4), tfm.RowsDense(4)
  params = ref.init(jax.random.key(4), x)
  assert (jax.tree.map(jnp.shape, rows.init(jax.random.key(4), x))
          == jax.tree.map(jnp.shape, params))
  params = jax.tree.map(lambda a: a + 0.1, params)       # nonzero bias
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))
  np.testing.assert_allclose(rows.apply(params, x), ref.apply(params, x), rtol=1e-6, atol=1e-6)
  got = jax.grad(loss(rows), argnums=(0, 1))(params, x)
  want = jax.grad(loss(ref), argnums=(0, 1))(params, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)
  assert rows.apply(params, x[0, 0]).shape == (4,)        # 1-D input: no leading axes
