"""Encoder-decoder transformer: T5-style span corruption on text, or source -> target pairs.

Two kinds of data (`config.model.task`):
  span   text windows `tokens: i32[B, L]` (L = data.block_size + 1) become
         (inputs, targets) by T5's span corruption (`text_ops.span_corruption`:
         noise density 0.15, mean span 3; each noise span replaced by a
         sentinel in the input, the targets list each sentinel and its span,
         then a closing sentinel). Sentinels are ids V..V+S, then one [BOS].
  pairs  batches with `inputs: i32[B, S]` and `targets: i32[B, T]` (e.g. the
         addition task); source positions equal to `model.pad_id` are padding
         (-1: none). [BOS] is id V.
The decoder reads [BOS] + targets[:-1] (teacher forcing) and the loss is the
cross-entropy of every target token, in nats per target token. Evaluation
adds `exact_match`: the greedy, KV-cached decoding of all T target tokens
equals the targets.

Sampling decodes `config.sample.prompt` (a source text; with task "span", one
sentinel is appended so the model fills in the end) `num_samples` times with
temperature and top-k (temperature 0: greedy), and returns the source followed
by the decoded tokens (sentinels and [BOS] are shown as <id>).
"""
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax import errors, types
from gen_jax.data import text_ops
from gen_jax.inference import sampling
from gen_jax.models import gpt
from gen_jax.nn import transformer

TASKS = ("span", "pairs")


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  m, s = config.model, config.sample
  if m.task not in TASKS:
    raise errors.ConfigError(errors.choices("model.task", m.task, TASKS))
  if m.task == "span":
    field = gpt.token_field(spec, "seq2seq (task 'span')")
    length = field.shape[0]
    src_len, tgt_len = text_ops.span_corruption_lengths(length, m.noise_density, m.mean_span)
    _, num_spans = text_ops.span_counts(length, m.noise_density, m.mean_span)
    sentinel, bos = field.cardinality, field.cardinality + num_spans + 1
  else:
    if "inputs" not in spec or "targets" not in spec:
      raise errors.ConfigError(f"seq2seq task 'pairs' needs fields inputs and targets; got "
                               f"{', '.join(spec)}")
    field = spec["inputs"]
    src_len, tgt_len = spec["inputs"].shape[0], spec["targets"].shape[0]
    sentinel, bos = -1, field.cardinality
  vocab_size = bos + 1
  net = transformer.EncoderDecoder(
      vocab_size=vocab_size, src_len=max(src_len, m.max_src_len), tgt_len=tgt_len,
      n_layer=m.n_layer, n_dec_layer=m.n_dec_layer, n_head=m.n_head, n_embd=m.n_embd,
      dropout=m.dropout, bias=m.bias, dtype=gpt.dtype_of(m.dtype))
  head_dim = m.n_embd // m.n_head

  def pairs_of(batch, rng):
    """(src i32[B, S], src_valid bool[B, S], targets i32[B, T])."""
    if m.task == "span":
      src, tgt = text_ops.span_corruption(rng, batch["tokens"], sentinel_start=sentinel,
                                          noise_density=m.noise_density,
                                          mean_span=m.mean_span)
      return src, jnp.ones(src.shape, bool), tgt
    src = batch["inputs"]
    return src, src != m.pad_id, batch["targets"]

  def shift_right(tgt):
    return jnp.concatenate([jnp.full(tgt[:, :1].shape, bos, tgt.dtype), tgt[:, :-1]], axis=1)

  def apply(params, src, valid, tgt, rng=None):
    deterministic = rng is None or m.dropout == 0
    return net.apply({"params": params["model"]}, src, valid, shift_right(tgt),
                     deterministic=deterministic,
                     rngs=None if deterministic else {"dropout": rng}).astype(jnp.float32)

  def init(rng, batch):
    src, valid, tgt = pairs_of(batch, rng)
    return {"model": net.init({"params": rng}, src, valid, shift_right(tgt))["params"]}, {}

  def loss(player, params, state, batch, rng):
    del player
    rng_data, rng_drop = jax.random.split(rng)
    src, valid, tgt = pairs_of(batch, rng_data)
    nll = optax.softmax_cross_entropy_with_integer_labels(
        apply(params, src, valid, tgt, rng_drop), tgt).mean()
    return nll, (state, {"nats_per_target_token": nll})

  def generate(params, src, valid, rng, num_new, temperature, top_k):
    """i32[B, num_new] decoded target tokens (greedy when temperature == 0)."""
    enc = net.apply({"params": params["model"]}, src, valid, method="encode")
    cache = transformer.init_cache(m.n_dec_layer, m.n_head, head_dim, src.shape[0], tgt_len)

    def decode_fn(tokens, cache, pos):
      return net.apply({"params": params["model"]}, tokens, enc, valid, cache, pos,
                       method="decode")
    run = sampling.make_sampler(decode_fn, num_new, top_k=top_k, greedy=temperature == 0)
    start = jnp.full((src.shape[0], 1), bos, jnp.int32)
    return run(cache, start, rng, temperature or 1.0)[:, 1:]

  def eval_fn(params, state, batch, rng, **kw):
    del state, kw
    src, valid, tgt = pairs_of(batch, rng)
    nll = optax.softmax_cross_entropy_with_integer_labels(apply(params, src, valid, tgt), tgt)
    decoded = generate(params, src, valid, None, tgt_len, 0.0, 0)
    exact = jnp.all(decoded == tgt, axis=-1).astype(jnp.float32)
    return {"nll": nll.mean(-1), "exact_match": exact,
            "tokens": jnp.full(nll.shape[:1], nll.shape[1], jnp.float32)}

  prompt = gpt.encode_prompt(s.prompt, field.vocab) if s.prompt else [0]
  if m.task == "span":
    prompt = prompt + [sentinel]
  elif m.pad_id >= 0:
    prompt = prompt + [m.pad_id] * max(src_len - len(prompt), 0)
  if len(prompt) > net.src_len:
    raise errors.ConfigError(f"sample.prompt is {len(prompt)} source tokens; the encoder has "
                             f"{net.src_len} positions (model.max_src_len)")

  def sample(params, state, rng, n):
    """i32[n, S + T]: the source prompt, then the decoded target tokens."""
    del state
    src = jnp.broadcast_to(jnp.asarray(prompt, jnp.int32), (n, len(prompt)))
    valid = src != m.pad_id
    out = generate(params, src, valid, rng, tgt_len, s.temperature, s.top_k)
    return jnp.concatenate([src, out], axis=1)

  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      eval_units={"nll": "nats per target token (teacher-forced cross-entropy)",
                  "exact_match": "fraction of examples whose greedy decoding equals the "
                                 "target exactly", "tokens": "target tokens"},
      eval_weights={"nll": "tokens"}, sample_field="tokens" if m.task == "span" else "inputs",
      sharding_rules=gpt.TP_RULES)


def default_model(**kw) -> ml_collections.ConfigDict:
  c = dict(task="span", n_layer=4, n_dec_layer=4, n_head=4, n_embd=128, dropout=0.0,
           bias=True, dtype="float32", noise_density=0.15, mean_span=3.0, pad_id=-1,
           max_src_len=0)
  c.update(kw)
  return ml_collections.ConfigDict(c)


def default_sample(**kw) -> ml_collections.ConfigDict:
  c = dict(prompt="", temperature=0.0, top_k=0)
  c.update(kw)
  return ml_collections.ConfigDict(c)
