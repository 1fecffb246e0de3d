"""GPT: a decoder-only transformer language model on windows of token ids.

nanoGPT's architecture (pre-LayerNorm blocks, exact GELU, learned positions,
tied input/output embeddings, dropout) from `gen_jax.nn.transformer`. Batches
are `tokens: i32[B, T+1]` windows; the model reads tokens 0..T-1 and predicts
tokens 1..T. Losses are in nats per token (per character for char-level text).

Config (`config.model`):
  block_size   learned positions (the longest context; data.block_size <= it)
  n_layer, n_head, n_embd, dropout, bias
  dtype        "float32" | "bfloat16": compute dtype; parameters, logits and
               softmaxes stay float32 (mixed precision with f32 master weights)
Sampling (`config.sample`): prompt (text; "" starts from the first vocabulary
character), num_tokens (new tokens), temperature (0 = greedy), top_k (0 =
off), top_p (1 = off). Sampling runs the KV-cached decoder in one jitted loop
(`gen_jax.inference.sampling`); a prompt with characters outside the
vocabulary, or a prompt plus new tokens longer than block_size, is a one-line
error.
Tensor parallelism (`config.sharding = "tensor"`): attention's fused q/k/v and
the MLP's first layer are split by columns over the "model" mesh axis, their
output projections by rows (Megatron-LM's layout); embeddings and norms are
replicated.
"""
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax import errors, types
from gen_jax.inference import sampling
from gen_jax.nn import transformer

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# Megatron-style tensor-parallel rules on parameter paths (and their optimizer moments).
TP_RULES = (
    (r"attn/c_attn/kernel$", (None, "model")),
    (r"attn/c_attn/bias$", ("model",)),
    (r"attn/c_proj/kernel$", ("model", None)),
    (r"mlp/c_fc/kernel$", (None, "model")),
    (r"mlp/c_fc/bias$", ("model",)),
    (r"mlp/c_proj/kernel$", ("model", None)),
)


def dtype_of(name: str):
  if name not in DTYPES:
    raise errors.ConfigError(errors.choices("model.dtype", name, DTYPES))
  return DTYPES[name]


def token_field(spec: dict, family: str):
  """The `tokens` field of a text spec, or a one-line error."""
  field = spec.get("tokens")
  if field is None or field.modality != "tokens" or len(field.shape) != 1:
    raise errors.ConfigError(f"family {family!r} needs token windows (data.block_size on a text "
                             f"dataset); got fields {', '.join(spec) or 'none'}")
  return field


def encode_prompt(text: str, vocab: tuple) -> list[int]:
  """Character ids of a prompt; characters outside the vocabulary are a one-line error."""
  index = {c: i for i, c in enumerate(vocab)}
  bad = sorted({c for c in text if c not in index})
  if bad:
    raise errors.ConfigError(
        f"sample.prompt has characters outside the training vocabulary: {bad!r}; use only "
        f"characters of the training text ({len(vocab)} symbols)")
  return [index[c] for c in text]


def build(m: ml_collections.ConfigDict, vocab_size: int) -> transformer.GPT:
  return transformer.GPT(vocab_size=vocab_size, block_size=m.block_size, n_layer=m.n_layer,
                         n_head=m.n_head, n_embd=m.n_embd, dropout=m.dropout, bias=m.bias,
                         dtype=dtype_of(m.dtype))


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """The GPT family for `tokens: i32[T+1]` windows of a `cardinality`-symbol vocabulary."""
  m, s = config.model, config.sample
  field = token_field(spec, "gpt")
  t = field.shape[0] - 1
  if t > m.block_size:
    raise errors.ConfigError(f"data.block_size={t} exceeds model.block_size={m.block_size} "
                             f"(the learned positions); lower data.block_size")
  if m.n_embd % m.n_head:
    raise errors.ConfigError(f"model.n_embd={m.n_embd} must be divisible by n_head={m.n_head}")
  vocab_size = field.cardinality
  net = build(m, vocab_size)
  prompt = encode_prompt(s.prompt, field.vocab) if s.prompt else [0]
  if len(prompt) + s.num_tokens > m.block_size:
    raise errors.ConfigError(
        f"sample.prompt ({len(prompt)} tokens) + sample.num_tokens ({s.num_tokens}) exceeds "
        f"model.block_size={m.block_size}, the longest context the model was trained for; "
        f"lower sample.num_tokens")
  train_dropout = m.dropout > 0

  def logits_of(params, tokens, rng=None):
    if rng is None or not train_dropout:
      return net.apply({"params": params["model"]}, tokens, deterministic=True)
    return net.apply({"params": params["model"]}, tokens, deterministic=False,
                     rngs={"dropout": rng})

  def init(rng, batch):
    params = net.init({"params": rng}, batch["tokens"][:, :-1], deterministic=True)["params"]
    return {"model": params}, {}

  def token_nll(params, batch, rng=None):
    """f32[B, T]: -log p(token t+1 | tokens <= t) in nats."""
    tokens = batch["tokens"]
    logits = logits_of(params, tokens[:, :-1], rng).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])

  def loss(player, params, state, batch, rng):
    del player
    nll = token_nll(params, batch, rng).mean()
    return nll, (state, {"nats_per_token": nll})

  def eval_fn(params, state, batch, rng, **kw):
    del state, rng, kw
    nll = token_nll(params, batch)
    return {"nll": nll.mean(-1), "tokens": jnp.full(nll.shape[:1], nll.shape[1], jnp.float32)}

  head_dim = m.n_embd // m.n_head

  def sample(params, state, rng, n):
    """i32[n, P + num_tokens]: the prompt followed by sampled tokens."""
    del state
    total = len(prompt) + s.num_tokens
    cache = transformer.init_cache(m.n_layer, m.n_head, head_dim, n, total)

    def decode_fn(tokens, cache, pos):
      return net.apply({"params": params["model"]}, tokens, cache, pos, method="decode")
    run = sampling.make_sampler(decode_fn, s.num_tokens, top_k=s.top_k,
                                greedy=s.temperature == 0)
    first = jnp.broadcast_to(jnp.asarray(prompt, jnp.int32), (n, len(prompt)))
    return run(cache, first, rng, s.temperature or 1.0, None if s.top_p >= 1 else s.top_p)

  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      eval_units={"nll": "nats per token (cross-entropy of the next token)",
                  "tokens": "predicted tokens"},
      eval_weights={"nll": "tokens"}, sample_field="tokens", sharding_rules=TP_RULES)


def default_model(**kw) -> ml_collections.ConfigDict:
  """nanoGPT's shakespeare_char model (6 layers, 6 heads, 384 wide, block 256)."""
  c = dict(block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, bias=True,
           dtype="float32")
  c.update(kw)
  return ml_collections.ConfigDict(c)


def default_optim(steps: int, **kw) -> ml_collections.ConfigDict:
  """nanoGPT's optimizer: AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on matrices,
  100 warmup steps, cosine decay to 1e-4 at `steps`, gradient clipping at 1.0."""
  from gen_jax import optim  # pylint: disable=g-import-not-at-top
  c = dict(name="adamw", b2=0.99, weight_decay=0.1, decay="matrices", schedule="cosine",
           warmup_steps=100, decay_steps=steps, final_lr_frac=0.1, grad_clip_norm=1.0)
  c.update(kw)
  return optim.adam(c.pop("lr", 1e-3), **c)


def default_sample(**kw) -> ml_collections.ConfigDict:
  c = dict(prompt="\n", num_tokens=200, temperature=0.8, top_k=200, top_p=1.0)
  c.update(kw)
  return ml_collections.ConfigDict(c)
