"""Masked-LM: a bidirectional transformer encoder trained BERT-style on token windows.

Each training batch of `tokens: i32[B, T+1]` windows uses its first T tokens.
`text_ops.mlm_mask` selects each position with probability `mask_rate`
(0.15); a selected token becomes [MASK] (80%), a random ordinary token (10%)
or stays (10%); the loss is the cross-entropy on the selected positions only,
in nats per selected token. [MASK] is id V, one past the data vocabulary.
Evaluation masks each window with a fixed key per batch, so every evaluation
of every checkpoint sees the same masks; its `nll` is weighted by the number
of selected tokens, so the split's mean is per masked token. With context on
both sides, it should come out below a causal model's per-token loss on the
same text.

Sampling is generation by iterative unmasking (as MaskGIT, Chang et al. 2022,
with the encoder's own predictions): start from the prompt followed by
[MASK]s; at each of `sample.steps` steps draw a token at every masked
position (temperature, top-k), keep the most confident draws (a share of the
remaining masks, so all are filled by the last step) and re-mask the rest.

Config: `config.model` as the GPT family (block_size, n_layer, n_head, n_embd,
dropout, bias, dtype) plus mask_rate; `config.sample`: prompt, num_tokens
(total length, <= block_size), steps, temperature, top_k.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gen_jax import errors, types
from gen_jax.data import text_ops
from gen_jax.inference import sampling
from gen_jax.models import gpt
from gen_jax.nn import transformer


def unmask_schedule(num_masked: int, steps: int) -> np.ndarray:
  """i32[steps]: how many masks to fill at each step (sums to num_masked)."""
  edges = np.round(np.linspace(0, num_masked, steps + 1)).astype(np.int32)
  return np.diff(edges)


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  m, s = config.model, config.sample
  field = gpt.token_field(spec, "mlm")
  t = field.shape[0] - 1
  if t > m.block_size:
    raise errors.ConfigError(f"data.block_size={t} exceeds model.block_size={m.block_size}; "
                             f"lower data.block_size")
  v = field.cardinality
  mask_id = v
  net = transformer.MaskedLM(vocab_size=v + 1, block_size=m.block_size, n_layer=m.n_layer,
                             n_head=m.n_head, n_embd=m.n_embd, dropout=m.dropout, bias=m.bias,
                             dtype=gpt.dtype_of(m.dtype))
  prompt = gpt.encode_prompt(s.prompt, field.vocab) if s.prompt else []
  if not len(prompt) < s.num_tokens <= m.block_size:
    raise errors.ConfigError(f"sample.num_tokens={s.num_tokens} must exceed the prompt "
                             f"({len(prompt)} tokens) and be <= model.block_size={m.block_size}")

  def logits_of(params, tokens, rng=None):
    valid = jnp.ones(tokens.shape, bool)
    if rng is None or m.dropout == 0:
      return net.apply({"params": params["model"]}, tokens, valid, deterministic=True)
    return net.apply({"params": params["model"]}, tokens, valid, deterministic=False,
                     rngs={"dropout": rng})

  def masked_nll(params, tokens, rng, rng_dropout=None):
    """(nll f32[B, T] nats, selected bool[B, T], correct bool[B, T])."""
    inputs, selected = text_ops.mlm_mask(rng, tokens, mask_id=mask_id, vocab_size=v,
                                         rate=m.mask_rate)
    logits = logits_of(params, inputs, rng_dropout).astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, tokens)
    return nll, selected, logits.argmax(-1) == tokens

  def init(rng, batch):
    tokens = batch["tokens"][:, :t]
    params = net.init({"params": rng}, tokens, jnp.ones(tokens.shape, bool))["params"]
    return {"model": params}, {}

  def loss(player, params, state, batch, rng):
    del player
    rng_mask, rng_drop = jax.random.split(rng)
    nll, sel, _ = masked_nll(params, batch["tokens"][:, :t], rng_mask, rng_drop)
    sel = sel.astype(jnp.float32)
    value = (nll * sel).sum() / jnp.maximum(sel.sum(), 1.0)
    return value, (state, {"masked_nll": value, "selected_frac": sel.mean()})

  def eval_fn(params, state, batch, rng, **kw):
    del state, kw
    nll, sel, correct = masked_nll(params, batch["tokens"][:, :t], rng)
    sel = sel.astype(jnp.float32)
    count = sel.sum(-1)
    per = lambda x: (x * sel).sum(-1) / jnp.maximum(count, 1.0)
    return {"nll": per(nll), "accuracy": per(correct.astype(jnp.float32)), "selected": count}

  counts = unmask_schedule(s.num_tokens - len(prompt), s.steps)

  def sample(params, state, rng, n):
    """i32[n, num_tokens]: the prompt, then tokens filled in by iterative unmasking."""
    del state
    tokens = jnp.full((n, s.num_tokens), mask_id, jnp.int32)
    tokens = tokens.at[:, :len(prompt)].set(jnp.asarray(prompt, jnp.int32))

    def step(tokens, xs):
      i, count = xs
      masked = tokens == mask_id
      logits = logits_of(params, tokens).astype(jnp.float32)[..., :v]   # never draw [MASK]
      logits = sampling.filter_logits(logits / s.temperature, s.top_k)
      draw = jax.random.categorical(jax.random.fold_in(rng, i), logits)
      conf = jnp.take_along_axis(jax.nn.log_softmax(logits), draw[..., None], -1)[..., 0]
      conf = jnp.where(masked, conf, -jnp.inf)
      rank = jnp.argsort(jnp.argsort(-conf, axis=-1), axis=-1)   # 0 = most confident
      fill = masked & (rank < count)
      return jnp.where(fill, draw, tokens), None
    steps = jnp.arange(len(counts))
    tokens, _ = jax.lax.scan(step, tokens, (steps, jnp.asarray(counts)))
    return tokens

  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      eval_units={"nll": "nats per masked token (cross-entropy on the selected positions)",
                  "accuracy": "fraction of selected positions predicted exactly",
                  "selected": "selected tokens"},
      eval_weights={"nll": "selected", "accuracy": "selected"}, sample_field="tokens",
      sharding_rules=gpt.TP_RULES)


def default_sample(**kw) -> ml_collections.ConfigDict:
  c = dict(prompt="", num_tokens=64, steps=16, temperature=1.0, top_k=0)
  c.update(kw)
  return ml_collections.ConfigDict(c)
