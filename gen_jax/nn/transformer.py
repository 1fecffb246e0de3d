"""Pre-LayerNorm transformer blocks for a GPT decoder, a BERT-style encoder and a T5-style seq2seq.

Architecture and parameter names follow nanoGPT (Karpathy), so checkpoints map
one-to-one and tensor-parallel sharding rules can match on names:

  wte, wpe              token / learned absolute position embeddings (nn.Embed)
  h_{i}                 blocks: ln_1, attn{c_attn, c_proj}, ln_2, mlp{c_fc, c_proj}
  ln_f                  final LayerNorm; logits = ln_f(h) @ wte.embedding.T (tied head)

The encoder-decoder names its stacks enc_h_{i} / dec_h_{i} (with enc_wpe,
dec_wpe, enc_ln_f, dec_ln_f); decoder blocks add ln_cross and
cross_attn{c_q, c_kv, c_proj} between self-attention and the MLP.

Mixed precision: parameters are always float32; `dtype` is the compute dtype of
the Dense layers and block LayerNorms. The residual stream stays float32 (a
float32 stream plus a bf16 branch promotes to float32, as under torch autocast),
and attention scores, their softmax, the final LayerNorm and the logits are
float32.

KV cache: a plain pytree from `init_cache`,
  {"k": [L, B, H, max_len, Dh], "v": [L, B, H, max_len, Dh], "index": i32[]},
where `index` is the number of positions filled. `decode(tokens, cache, pos)`
writes the keys/values of T' new tokens at positions pos..pos+T'-1 and lets
them attend to cache positions < pos plus themselves causally; it returns the
cache with index = pos + T'. The caller keeps pos + T' <= max_len <= block_size
(dynamic_update_slice would clamp the write position otherwise).
"""
import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Cache = dict[str, jax.Array]

# nanoGPT's init: N(0, 0.02) for every Dense and Embed kernel, zero biases.
INIT = nn.initializers.normal(0.02)
LN_EPS = 1e-5  # PyTorch's LayerNorm default


def proj_init(n_layer: int):
  """N(0, 0.02 / sqrt(2 n_layer)) for residual output projections (GPT-2 scaling).

  Each block adds two residual branches, so the stream's variance at init grows
  with 2 * n_layer; the scale keeps it O(1).
  """
  return nn.initializers.normal(0.02 / (2 * n_layer) ** 0.5)


def init_cache(n_layer: int, n_head: int, head_dim: int, batch: int, max_len: int,
               dtype: Any = jnp.float32) -> Cache:
  """An empty KV cache: {"k", "v": dtype[L, B, H, max_len, Dh] zeros, "index": i32[] 0}."""
  shape = (n_layer, batch, n_head, max_len, head_dim)
  return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype),
          "index": jnp.zeros((), jnp.int32)}


def causal_mask(t: int) -> jax.Array:
  """bool[1, 1, T, T]: query i may see key j iff j <= i."""
  return jnp.tril(jnp.ones((t, t), bool))[None, None]


def cache_mask(pos: jax.Array, t: int, max_len: int) -> jax.Array:
  """bool[1, 1, T', max_len] for queries at absolute positions pos..pos+T'-1.

  Key slot j is visible to query position q iff j <= q: that hides both the
  unfilled slots >= pos + T' and the later new tokens.
  """
  q_pos = pos + jnp.arange(t)
  return (jnp.arange(max_len)[None, :] <= q_pos[:, None])[None, None]


def padding_mask(valid: jax.Array) -> jax.Array:
  """bool[B, S] (True = real token) -> bool[B, 1, 1, S] over keys."""
  return valid[:, None, None, :]


def attention_probs(q: jax.Array, k: jax.Array, mask: jax.Array) -> jax.Array:
  """Scaled dot-product attention weights.

  Args:
    q: [B, H, T, Dh] queries, any float dtype.
    k: [B, H, S, Dh] keys.
    mask: bool broadcastable to [B, H, T, S]; False hides a key.

  Returns:
    f32[B, H, T, S], rows summing to 1 over visible keys. Hidden keys get
    exactly 0 (a finite minimum, not -inf, so a fully hidden row is uniform
    rather than NaN).
  """
  scores = jnp.einsum("bhtd,bhsd->bhts", q, k, preferred_element_type=jnp.float32)
  scores = scores * q.shape[-1] ** -0.5
  scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
  return jax.nn.softmax(scores, axis=-1)


class RowsDense(nn.Dense):
  """nn.Dense over the last axis that multiplies one [rows, features] matrix.

  Same parameters ("kernel", "bias") and outputs as nn.Dense; the leading axes
  are folded into one before the product. With [B, T, D] inputs, the kernel
  gradient is then a plain x^T dy product: XLA:CPU otherwise contracts over
  (B, T) through a transposed copy of dy, once per layer and step.
  """

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    lead = inputs.shape[:-1]
    y = super().__call__(inputs.reshape(-1, inputs.shape[-1]))
    return y.reshape(*lead, y.shape[-1])


def _dense(features: int, bias: bool, dtype: Any, name: str, kernel_init=INIT) -> nn.Dense:
  return RowsDense(features, use_bias=bias, dtype=dtype, param_dtype=jnp.float32,
                   kernel_init=kernel_init, name=name)


def _layer_norm(bias: bool, dtype: Any, name: Optional[str] = None) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=LN_EPS, use_bias=bias, dtype=dtype, param_dtype=jnp.float32,
                      name=name)


def _embed(num: int, features: int) -> nn.Embed:
  # Lookups and the tied head run in float32; blocks cast their inputs themselves.
  return nn.Embed(num, features, embedding_init=INIT, dtype=jnp.float32,
                  param_dtype=jnp.float32)


class Attention(nn.Module):
  """Multi-head attention: self (fused c_attn) or cross (c_q on x, c_kv on the context).

  `n_layer` is the depth of the stack this layer lives in; it only sets the
  c_proj init scale.
  """
  n_embd: int
  n_head: int
  n_layer: int
  dropout: float = 0.0
  bias: bool = True
  dtype: Any = jnp.float32
  cross: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, deterministic: bool = True,
               context: Optional[jax.Array] = None,
               kv_cache: Optional[tuple[jax.Array, jax.Array]] = None,
               pos: Optional[jax.Array] = None):
    """Attends from x to itself (or to `context` if cross).

    Args:
      x: f32[B, T, D] (LayerNorm output) queries.
      mask: bool broadcastable to [B, H, T, S], S = number of keys.
      deterministic: disables dropout on the probabilities and the output.
      context: f32[B, S, D] keys/values source for cross-attention.
      kv_cache: (k, v), each [B, H, max_len, Dh]; this call's keys/values are
        written at slot `pos` and attention runs over all max_len slots.
      pos: i32[] absolute position of x[:, 0] (with kv_cache).

    Returns:
      (y dtype[B, T, D], updated kv_cache or None).
    """
    d, h = self.n_embd, self.n_head
    if d % h:
      raise ValueError(f"n_embd={d} is not divisible by n_head={h}")
    dense = functools.partial(_dense, bias=self.bias, dtype=self.dtype)
    if self.cross:
      q = dense(d, name="c_q")(x)
      k, v = jnp.split(dense(2 * d, name="c_kv")(context), 2, axis=-1)
    else:
      q, k, v = jnp.split(dense(3 * d, name="c_attn")(x), 3, axis=-1)
    # [B, T, D] -> [B, H, T, Dh]: heads are contiguous Dh-slices of D, as nanoGPT's view.
    heads = lambda a: a.reshape(a.shape[0], a.shape[1], h, d // h).transpose(0, 2, 1, 3)
    q, k, v = heads(q), heads(k), heads(v)
    if kv_cache is not None:
      start = (0, 0, jnp.asarray(pos, jnp.int32), 0)
      kv_cache = tuple(jax.lax.dynamic_update_slice(c, new.astype(c.dtype), start)
                       for c, new in zip(kv_cache, (k, v), strict=True))
      k, v = (c.astype(self.dtype) for c in kv_cache)
    probs = attention_probs(q, k, mask)
    probs = nn.Dropout(self.dropout)(probs, deterministic=deterministic)
    y = jnp.einsum("bhts,bhsd->bhtd", probs.astype(v.dtype), v)
    y = y.transpose(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], d)
    y = dense(d, name="c_proj", kernel_init=proj_init(self.n_layer))(y)
    return nn.Dropout(self.dropout)(y, deterministic=deterministic), kv_cache


def gelu_exact(x: jax.Array) -> jax.Array:
  """Exact GELU, x * Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2, as PyTorch computes it.

  jax.nn.gelu(approximate=False) goes through erfc, which XLA's CPU backend
  evaluates about twice as slowly as erf, forward and backward; the values
  differ by at most ~1e-6 (for x < -5, where Phi(x) is below float32's resolution near 1).
  """
  return x * 0.5 * (1.0 + jax.lax.erf(x * (2.0 ** -0.5)))


class MLP(nn.Module):
  """c_fc (4D) -> exact GELU -> c_proj (D) -> dropout: f32[B, T, D] -> dtype[B, T, D]."""
  n_embd: int
  n_layer: int
  dropout: float = 0.0
  bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    x = _dense(4 * self.n_embd, self.bias, self.dtype, "c_fc")(x)
    x = gelu_exact(x)
    x = _dense(self.n_embd, self.bias, self.dtype, "c_proj", proj_init(self.n_layer))(x)
    return nn.Dropout(self.dropout)(x, deterministic=deterministic)


class Block(nn.Module):
  """Pre-LN block: x += attn(ln_1 x); [x += cross_attn(ln_cross x, ctx)]; x += mlp(ln_2 x)."""
  n_embd: int
  n_head: int
  n_layer: int
  dropout: float = 0.0
  bias: bool = True
  dtype: Any = jnp.float32
  cross: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, deterministic: bool = True,
               kv_cache=None, pos=None, context=None, context_mask=None):
    """x: f32[B, T, D] -> (f32[B, T, D], kv_cache); arguments as `Attention`.

    `context` f32[B, S, D] and `context_mask` bool[B, 1, 1, S] feed the
    cross-attention of decoder blocks (cross=True).
    """
    kw = dict(n_embd=self.n_embd, n_head=self.n_head, n_layer=self.n_layer,
              dropout=self.dropout, bias=self.bias, dtype=self.dtype)
    ln = lambda name: _layer_norm(self.bias, self.dtype, name)
    y, kv_cache = Attention(**kw, name="attn")(ln("ln_1")(x), mask, deterministic,
                                               kv_cache=kv_cache, pos=pos)
    x = x + y
    if self.cross:
      y, _ = Attention(**kw, cross=True, name="cross_attn")(
          ln("ln_cross")(x), context_mask, deterministic, context=context)
      x = x + y
    x = x + MLP(self.n_embd, self.n_layer, self.dropout, self.bias, self.dtype,
                name="mlp")(ln("ln_2")(x), deterministic)
    return x, kv_cache


def _make_blocks(n: int, m: nn.Module, cross: bool = False) -> list[Block]:
  return [Block(m.n_embd, m.n_head, n, m.dropout, m.bias, m.dtype, cross) for _ in range(n)]


def _run_blocks(blocks: Sequence[Block], x: jax.Array, mask: jax.Array, deterministic: bool,
                cache: Optional[Cache] = None, pos: Optional[jax.Array] = None, **cross):
  """Runs a stack; with a cache, layer i reads/writes cache["k"][i], cache["v"][i]."""
  if cache is not None and cache["k"].shape[0] != len(blocks):
    raise ValueError(f"cache has {cache['k'].shape[0]} layers, the stack {len(blocks)}")
  ks, vs = [], []
  for i, block in enumerate(blocks):
    kv = None if cache is None else (cache["k"][i], cache["v"][i])
    x, kv = block(x, mask, deterministic, kv_cache=kv, pos=pos, **cross)
    if kv is not None:
      ks.append(kv[0])
      vs.append(kv[1])
  if cache is None:
    return x, None
  return x, {"k": jnp.stack(ks), "v": jnp.stack(vs), "index": pos + x.shape[1]}


def _check_len(t: int, limit: int, what: str):
  if t > limit:
    raise ValueError(f"{what} length {t} exceeds the {limit} learned positions")


class _TokenStack(nn.Module):
  """One stack of blocks over token and learned position embeddings, with a tied head.

  The GPT decoder and the masked-LM encoder share it (and its parameter names);
  they differ in the attention mask and in what they offer besides `__call__`.
  """
  vocab_size: int
  block_size: int
  n_layer: int
  n_head: int
  n_embd: int
  dropout: float = 0.0
  bias: bool = True
  dtype: Any = jnp.float32

  def setup(self):
    self.wte = _embed(self.vocab_size, self.n_embd)
    self.wpe = _embed(self.block_size, self.n_embd)
    self.drop = nn.Dropout(self.dropout)
    self.h = _make_blocks(self.n_layer, self)   # a list attribute names them h_0, h_1, ...
    self.ln_f = _layer_norm(self.bias, jnp.float32)


class GPT(_TokenStack):
  """Causal decoder LM (nanoGPT): tokens i32[B, T] -> logits f32[B, T, vocab_size]."""

  def __call__(self, tokens: jax.Array, deterministic: bool = True) -> jax.Array:
    """tokens: i32[B, T], T <= block_size -> logits f32[B, T, V]."""
    return self.from_embeddings(self.wte(tokens), deterministic)

  def from_embeddings(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    """Everything after the token lookup: x f32[B, T, D] -> logits f32[B, T, V]."""
    t = x.shape[1]
    _check_len(t, self.block_size, "sequence")
    x = self.drop(x + self.wpe(jnp.arange(t)), deterministic=deterministic)
    x, _ = _run_blocks(self.h, x, causal_mask(t), deterministic)
    return self.wte.attend(self.ln_f(x))

  def decode(self, tokens: jax.Array, cache: Cache, pos: jax.Array) -> tuple[jax.Array, Cache]:
    """Incremental forward without dropout.

    Args:
      tokens: i32[B, T'] occupying absolute positions pos..pos+T'-1.
      cache: from `init_cache(n_layer, n_head, n_embd // n_head, B, max_len)`,
        holding positions < pos.
      pos: i32[] (may be traced).

    Returns:
      (logits f32[B, T', V], cache with these tokens written and index = pos + T').
    """
    t, max_len = tokens.shape[1], cache["k"].shape[3]
    _check_len(max_len, self.block_size, "cache")
    pos = jnp.asarray(pos, jnp.int32)
    x = self.wte(tokens) + self.wpe(pos + jnp.arange(t))
    x, cache = _run_blocks(self.h, x, cache_mask(pos, t, max_len), True, cache, pos)
    return self.wte.attend(self.ln_f(x)), cache


class MaskedLM(_TokenStack):
  """Bidirectional encoder with a tied MLM head (BERT objective, nanoGPT blocks and names)."""

  def __call__(self, tokens: jax.Array, valid: jax.Array, deterministic: bool = True):
    """tokens: i32[B, T], valid: bool[B, T] (False = padding key) -> logits f32[B, T, V].

    Logits at padding positions are computed but meaningless.
    """
    t = tokens.shape[1]
    _check_len(t, self.block_size, "sequence")
    x = self.drop(self.wte(tokens) + self.wpe(jnp.arange(t)), deterministic=deterministic)
    x, _ = _run_blocks(self.h, x, padding_mask(valid), deterministic)
    return self.wte.attend(self.ln_f(x))


class EncoderDecoder(nn.Module):
  """T5-style seq2seq with pre-LN blocks, learned positions and one shared, tied `wte`.

  c_proj init scales use each stack's own depth (n_layer for the encoder,
  n_dec_layer for the decoder).
  """
  vocab_size: int
  src_len: int
  tgt_len: int
  n_layer: int
  n_dec_layer: int
  n_head: int
  n_embd: int
  dropout: float = 0.0
  bias: bool = True
  dtype: Any = jnp.float32

  def setup(self):
    self.wte = _embed(self.vocab_size, self.n_embd)
    self.enc_wpe = _embed(self.src_len, self.n_embd)
    self.dec_wpe = _embed(self.tgt_len, self.n_embd)
    self.drop = nn.Dropout(self.dropout)
    self.enc_h = _make_blocks(self.n_layer, self)
    self.dec_h = _make_blocks(self.n_dec_layer, self, cross=True)
    self.enc_ln_f = _layer_norm(self.bias, jnp.float32)
    self.dec_ln_f = _layer_norm(self.bias, jnp.float32)

  def encode(self, src: jax.Array, src_valid: jax.Array, deterministic: bool = True):
    """src: i32[B, S], src_valid: bool[B, S] -> enc f32[B, S, D] (bidirectional)."""
    s = src.shape[1]
    _check_len(s, self.src_len, "source")
    x = self.drop(self.wte(src) + self.enc_wpe(jnp.arange(s)), deterministic=deterministic)
    x, _ = _run_blocks(self.enc_h, x, padding_mask(src_valid), deterministic)
    return self.enc_ln_f(x)

  def __call__(self, src: jax.Array, src_valid: jax.Array, tgt_in: jax.Array,
               deterministic: bool = True) -> jax.Array:
    """Teacher forcing: src i32[B, S], src_valid bool[B, S], tgt_in i32[B, T] -> f32[B, T, V]."""
    enc = self.encode(src, src_valid, deterministic)
    t = tgt_in.shape[1]
    _check_len(t, self.tgt_len, "target")
    x = self.drop(self.wte(tgt_in) + self.dec_wpe(jnp.arange(t)), deterministic=deterministic)
    x, _ = _run_blocks(self.dec_h, x, causal_mask(t), deterministic,
                       context=enc, context_mask=padding_mask(src_valid))
    return self.wte.attend(self.dec_ln_f(x))

  def decode(self, tgt: jax.Array, enc: jax.Array, src_valid: jax.Array, cache: Cache,
             pos: jax.Array) -> tuple[jax.Array, Cache]:
    """Incremental decoder forward without dropout; cache as `GPT.decode` (n_dec_layer layers).

    Cross-attention keys/values are recomputed from `enc` on every call: for
    the short sources here that costs less than carrying a second cache.

    Args:
      tgt: i32[B, T'] at absolute target positions pos..pos+T'-1.
      enc: f32[B, S, D] from `encode`.
      src_valid: bool[B, S].
      cache: decoder self-attention cache holding positions < pos.
      pos: i32[] (may be traced).

    Returns:
      (logits f32[B, T', V], updated cache with index = pos + T').
    """
    t, max_len = tgt.shape[1], cache["k"].shape[3]
    _check_len(max_len, self.tgt_len, "cache")
    pos = jnp.asarray(pos, jnp.int32)
    x = self.wte(tgt) + self.dec_wpe(pos + jnp.arange(t))
    x, cache = _run_blocks(self.dec_h, x, cache_mask(pos, t, max_len), True, cache, pos,
                           context=enc, context_mask=padding_mask(src_valid))
    return self.wte.attend(self.dec_ln_f(x)), cache
