"""Corruptions for denoising objectives on token ids: BERT's masking and T5's span corruption.

`mlm_mask` and `span_corruption` are pure jnp functions of an explicit rng, so
they run inside jit on device batches; their output shapes depend only on the
input shape and static arguments. `reconstruct` is host-side numpy, for tests
and for showing examples.

Ids at or above the ordinary vocabulary are special: callers reserve them
(e.g. mask_id = V, or sentinels sentinel_start .. sentinel_start + num_spans).
"""
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors


def mlm_mask(rng: jax.Array, tokens: jax.Array, *, mask_id: int, vocab_size: int,
             rate: float = 0.15, valid: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """BERT's masked-language-model corruption (as HF's DataCollatorForLanguageModeling).

  Each valid position is selected independently with probability `rate`. Of
  the selected, 80% become `mask_id`, 10% a token drawn uniformly from the
  ordinary ids [0, vocab_size), and 10% stay unchanged. Unlike HF, which draws
  the random token from the whole tokenizer, special ids (>= vocab_size) are
  never drawn. The loss is taken on the selected positions against `tokens`.

  Args:
    rng: a jax PRNG key.
    tokens: i32[B, T] ids.
    mask_id: the id of the mask token (usually vocab_size).
    vocab_size: V, the number of ordinary ids.
    rate: selection probability.
    valid: bool[B, T] or None (all valid); False positions (padding, special
      tokens) are never selected and come back unchanged.

  Returns:
    (inputs i32[B, T], selected bool[B, T]).
  """
  k_select, k_kind, k_token = jax.random.split(rng, 3)
  selected = jax.random.bernoulli(k_select, rate, tokens.shape)
  if valid is not None:
    selected &= valid
  kind = jax.random.uniform(k_kind, tokens.shape)
  random_token = jax.random.randint(k_token, tokens.shape, 0, vocab_size, tokens.dtype)
  inputs = jnp.where(selected & (kind < 0.8), jnp.asarray(mask_id, tokens.dtype), tokens)
  inputs = jnp.where(selected & (kind >= 0.8) & (kind < 0.9), random_token, inputs)
  return inputs, selected


def span_counts(length: int, noise_density: float = 0.15,
                mean_span: float = 3.0) -> tuple[int, int]:
  """(num_noise, num_spans) of T5's random_spans_noise_mask for a length-L text.

  num_noise = round(L * density) clipped to [1, L - 1]; num_spans =
  max(1, round(num_noise / mean_span)), also capped at num_noise and at the
  L - num_noise non-noise tokens so every span of either kind is non-empty
  (T5 leaves that cap out; it only binds for extreme densities). Rounding is
  Python's (half to even), as tf.round.
  """
  if length < 2:
    raise errors.ConfigError(f"span corruption needs sequences of at least 2 tokens, got {length}")
  num_noise = min(max(round(length * noise_density), 1), length - 1)
  num_spans = max(1, round(num_noise / mean_span))
  return num_noise, min(num_spans, num_noise, length - num_noise)


def span_corruption_lengths(length: int, noise_density: float = 0.15,
                            mean_span: float = 3.0) -> tuple[int, int]:
  """(Lin, Lout) of `span_corruption` on length-L sequences.

  Lin = L - num_noise + num_spans (each span becomes one sentinel);
  Lout = num_noise + num_spans + 1 (a sentinel before each span, one at the end).
  """
  num_noise, num_spans = span_counts(length, noise_density, mean_span)
  return length - num_noise + num_spans, num_noise + num_spans + 1


def _random_segmentation(rng: jax.Array, num_items: int, num_segments: int) -> jax.Array:
  """Lengths of a uniformly random split of num_items into num_segments non-empty parts.

  As T5: shuffle (num_segments - 1) segment starts among the num_items - 1 gaps.
  Returns i32[num_segments], summing to num_items.
  """
  starts = jnp.arange(num_items - 1) < num_segments - 1
  first = jnp.concatenate([jnp.zeros(1, jnp.int32),
                           jax.random.permutation(rng, starts).astype(jnp.int32)])
  return jnp.bincount(jnp.cumsum(first), length=num_segments)


def _noise_mask(rng: jax.Array, length: int, num_noise: int, num_spans: int) -> jax.Array:
  """T5's random_spans_noise_mask for one sequence: bool[L], non-noise span first."""
  k_noise, k_keep = jax.random.split(rng)
  noise = _random_segmentation(k_noise, num_noise, num_spans)
  keep = _random_segmentation(k_keep, length - num_noise, num_spans)
  interleaved = jnp.stack([keep, noise], axis=1).reshape(-1)
  # Span number of every position: how many span starts lie at or before it.
  span_starts = jnp.cumsum(interleaved)[:-1]
  span_num = jnp.cumsum(jnp.zeros(length, jnp.int32).at[span_starts].add(1))
  return span_num % 2 == 1


def _collapse_spans(tokens: jax.Array, span_mask: jax.Array, out_len: int,
                    sentinel_start: int) -> jax.Array:
  """Replaces each run of span_mask by one sentinel (numbered in order): i32[out_len].

  As T5's noise_span_to_unique_sentinel, with sentinels counting up from
  sentinel_start instead of down from the vocabulary's end.
  """
  prev = jnp.concatenate([jnp.zeros(1, bool), span_mask[:-1]])
  first = span_mask & ~prev
  sentinel = sentinel_start + jnp.cumsum(first) - 1
  values = jnp.where(first, sentinel.astype(tokens.dtype), tokens)
  keep = ~(span_mask & prev)
  # The kept count is static (out_len), so a scatter replaces T5's boolean_mask.
  dest = jnp.where(keep, jnp.cumsum(keep) - 1, out_len)
  return jnp.zeros(out_len, tokens.dtype).at[dest].set(values, mode="drop")


def span_corruption(rng: jax.Array, tokens: jax.Array, *, sentinel_start: int,
                    noise_density: float = 0.15,
                    mean_span: float = 3.0) -> tuple[jax.Array, jax.Array]:
  """T5's span corruption (t5/data/preprocessors.py, random_spans_noise_mask).

  num_noise tokens (`span_counts`) are split at random into num_spans noise
  spans and the rest into num_spans non-noise spans, interleaved non-noise
  first. So, as in T5 without its later random_roll option, every text starts
  with a non-noise span and ends with a noise span: the first token is never
  corrupted and the last always is. Each row gets its own mask.

  Args:
    rng: a jax PRNG key.
    tokens: i32[B, L] ordinary ids, all below sentinel_start.
    sentinel_start: the first of the num_spans + 1 sentinel ids this uses.
    noise_density: fraction of tokens corrupted.
    mean_span: mean noise-span length.

  Returns:
    inputs: i32[B, Lin], the text with noise span i replaced by sentinel_start + i.
    targets: i32[B, Lout], for each span i: sentinel_start + i then the span's
      tokens; then sentinel_start + num_spans as an end marker.
    (Lin, Lout) = span_corruption_lengths(L, noise_density, mean_span).
  """
  batch, length = tokens.shape
  num_noise, num_spans = span_counts(length, noise_density, mean_span)
  len_in, len_out = span_corruption_lengths(length, noise_density, mean_span)

  def one(key, row):
    noise = _noise_mask(key, length, num_noise, num_spans)
    inputs = _collapse_spans(row, noise, len_in, sentinel_start)
    # The targets are the complement: non-noise span i becomes sentinel i, which
    # then precedes noise span i.
    targets = _collapse_spans(row, ~noise, len_out - 1, sentinel_start)
    end = jnp.full(1, sentinel_start + num_spans, tokens.dtype)
    return inputs, jnp.concatenate([targets, end])

  return jax.vmap(one)(jax.random.split(rng, batch), tokens)


def reconstruct(inputs, targets, sentinel_start: int) -> np.ndarray:
  """Rebuilds the original tokens from span corruption's (inputs, targets).

  Args:
    inputs: int[B, Lin] or int[Lin].
    targets: int[B, Lout] or int[Lout]; ids >= sentinel_start are sentinels.
    sentinel_start: as given to `span_corruption`.

  Returns:
    i32[B, L] (or i32[L] for 1-D arguments), the uncorrupted tokens.
  """
  inputs, targets = np.asarray(inputs), np.asarray(targets)
  squeeze = inputs.ndim == 1
  rows = []
  for x, y in zip(np.atleast_2d(inputs), np.atleast_2d(targets), strict=True):
    spans, current = {}, None
    for t in y.tolist():
      if t >= sentinel_start:
        current = spans.setdefault(t, [])
      elif current is not None:
        current.append(t)
    out = []
    for t in x.tolist():
      out.extend(spans.get(t, []) if t >= sentinel_start else [t])
    rows.append(out)
  if len({len(r) for r in rows}) > 1:
    raise errors.DataError("span-corrupted rows rebuild to different lengths")
  result = np.asarray(rows, np.int32)
  return result[0] if squeeze else result
