"""Autoregressive token sampling: a KV-cached decode loop and a cache-free reference.

Each sampler is one jitted program whose `lax.scan` emits one token per step,
so the host dispatches a single call however many tokens are generated.
`sample` prefills the prompt once and then feeds one token per step through
the model's KV cache; `sample_full` re-runs the whole forward pass over a
fixed-size buffer every step. New token i (0-based, at absolute position
P + i) is drawn with key `jax.random.fold_in(rng, i)` in both, with the same
filtering, so for the same model and key they return the same tokens.

Static arguments (a new value compiles a new program): the model function,
`num_new`, `top_k`, `max_len`, `return_cache`, whether `temperature == 0`
(greedy) and whether `top_p < 1` (nucleus on). The values of `temperature`,
`top_p`, `rng`, the prompt and the cache are traced, so changing them reuses
the compiled program as long as shapes and dtypes stay the same. The model
function is hashed by identity: pass the same function object on every call
(not a fresh lambda or `functools.partial`), or the loop is traced again.
"""
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

# decode_fn(tokens i32[B, T'], cache, pos i32[]) -> (logits f32[B, T', V], cache): runs the
# model on tokens at absolute positions pos .. pos + T' - 1, reading and extending the cache.
DecodeFn = Callable[[jax.Array, Any, jax.Array], tuple[jax.Array, Any]]
# forward_fn(tokens i32[B, L]) -> logits f32[B, L, V]: causal, so logits at t see tokens <= t.
ForwardFn = Callable[[jax.Array], jax.Array]


def filter_logits(logits: jax.Array, top_k: int = 0,
                  top_p: float | jax.Array | None = 1.0) -> jax.Array:
  """Top-k and nucleus (top-p) filtering; removed entries become -inf.

  Tokens are ranked by logit, ties broken by lower index, so exactly
  `min(top_k, V)` entries survive top-k. Top-p then keeps, among those, the
  smallest prefix of the ranking whose renormalized probability reaches
  `top_p`: a token is kept when the mass ranked strictly above it is below
  `top_p`, so the top token always stays.

  Args:
    logits: f32[..., V] unnormalized log-probabilities.
    top_k: keep the k largest; 0 (or >= V) keeps all. Static (a Python int).
    top_p: nucleus mass in (0, 1]; 1.0 or None keeps all (a Python value skips the
      sort); 0 or less keeps only the top token. May be a traced f32[] scalar.

  Returns:
    f32[..., V], `logits` where kept and -inf elsewhere.
  """
  logits = logits.astype(jnp.float32)
  v = logits.shape[-1]
  use_k = 0 < top_k < v
  use_p = not _nucleus_off(top_p)
  if not (use_k or use_p):
    return logits
  # Descending order; argsort of the negation is stable, so ties go to the lower index.
  order = jnp.argsort(-logits, axis=-1, stable=True)
  sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
  rank = jnp.arange(v)
  keep = jnp.ones(logits.shape, bool)
  if use_k:
    keep = jnp.broadcast_to(rank < top_k, logits.shape)
    sorted_logits = jnp.where(keep, sorted_logits, -jnp.inf)
  if use_p:
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    # Mass strictly above each rank: a shifted cumsum, not cumsum - probs, which rounds
    # differently and can push an exact boundary (0.5 + 0.3 vs p = 0.8) over it.
    above = jnp.cumsum(probs, axis=-1)
    above = jnp.concatenate([jnp.zeros_like(above[..., :1]), above[..., :-1]], axis=-1)
    # The top token stays even for top_p <= 0, and a traced top_p of 1.0 keeps a tail token
    # whose `above` rounds to 1.0.
    keep = keep & ((above < top_p) | (rank == 0) | (jnp.asarray(top_p) >= 1.0))
  # Back to vocabulary order: the inverse permutation of `order`.
  keep = jnp.take_along_axis(keep, jnp.argsort(order, axis=-1), axis=-1)
  return jnp.where(keep, logits, -jnp.inf)


def _nucleus_off(top_p) -> bool:
  """Whether top_p switches nucleus filtering off without looking at traced values."""
  return top_p is None or (isinstance(top_p, (int, float)) and top_p >= 1.0)


def _pick(logits: jax.Array, rng: jax.Array, i, temperature, top_k: int, top_p,
          greedy: bool) -> jax.Array:
  """Token i from f32[B, V] logits: argmax when greedy, else a draw with key fold_in(rng, i)."""
  logits = logits.astype(jnp.float32)
  if greedy:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  filtered = filter_logits(logits / temperature, top_k, top_p)
  return jax.random.categorical(jax.random.fold_in(rng, i), filtered, axis=-1).astype(jnp.int32)


def _generate(decode_fn: DecodeFn, cache, prompt: jax.Array, rng: jax.Array, temperature,
              top_p, *, num_new: int, top_k: int, greedy: bool):
  """(tokens i32[B, P + num_new], cache after the last decode call); see `sample`."""
  prompt = jnp.asarray(prompt, jnp.int32)
  p = prompt.shape[1]
  if num_new == 0:
    return prompt, cache
  pick = functools.partial(_pick, rng=rng, temperature=temperature, top_k=top_k, top_p=top_p,
                           greedy=greedy)
  logits, cache = decode_fn(prompt, cache, jnp.int32(0))
  first = pick(logits[:, -1], i=0)

  def step(carry, i):
    # Feeds token i - 1 (position P + i - 1) and draws token i from its logits.
    tok, cache = carry
    logits, cache = decode_fn(tok[:, None], cache, p + i - 1)
    nxt = pick(logits[:, -1], i=i)
    return (nxt, cache), nxt

  # The last token is never fed back: num_new - 1 decode steps after the prefill.
  (_, cache), rest = lax.scan(step, (first, cache), jnp.arange(1, num_new, dtype=jnp.int32))
  tokens = jnp.concatenate([prompt, first[:, None], rest.T], axis=1)
  return tokens, cache


@functools.partial(jax.jit, static_argnames=("decode_fn", "num_new", "top_k", "greedy",
                                             "return_cache"))
def _sample_jit(decode_fn, cache, prompt, rng, temperature, top_p, *, num_new, top_k, greedy,
                return_cache):
  tokens, cache = _generate(decode_fn, cache, prompt, rng, temperature, top_p, num_new=num_new,
                            top_k=top_k, greedy=greedy)
  return (tokens, cache) if return_cache else tokens


def sample(decode_fn: DecodeFn, cache, prompt: jax.Array, num_new: int, rng: jax.Array,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           return_cache: bool = False):
  """Generates `num_new` tokens after `prompt` with a KV-cached model, in one jitted call.

  One `decode_fn` call prefills the whole prompt at position 0; the logits at
  its last position give new token 0. Then a `lax.scan` of `num_new - 1` steps
  feeds each new token i at position P + i and draws token i + 1. Compiled once
  per (decode_fn, shapes, num_new, top_k, greedy, return_cache).

  Args:
    decode_fn: `(tokens i32[B, T'], cache, pos i32[]) -> (logits f32[B, T', V], cache)`,
      the model on tokens at positions pos .. pos + T' - 1. Static; hashed by identity.
    cache: any pytree `decode_fn` accepts, sized for at least P + num_new - 1 positions.
    prompt: i32[B, P] with P >= 1.
    num_new: tokens to generate. Static.
    rng: PRNG key; token i uses `fold_in(rng, i)`. Unused when greedy.
    temperature: a Python number; 0 means greedy argmax (static), any other value
      divides the logits and is traced.
    top_k: see `filter_logits`. Static.
    top_p: see `filter_logits`; a value >= 1 leaves the filter out, others are traced.
    return_cache: also return the cache after the last decode call. Static.

  Returns:
    i32[B, P + num_new], the prompt followed by the new tokens; with
    `return_cache`, the pair (tokens, cache).
  """
  greedy = bool(temperature == 0)   # concrete: its zero-ness picks the program
  # None rather than a traced 1.0, so the loop has no per-step sort when nucleus is off.
  top_p = None if _nucleus_off(top_p) else top_p
  return _sample_jit(decode_fn, cache, prompt, rng, 1.0 if greedy else temperature, top_p,
                     num_new=num_new, top_k=top_k, greedy=greedy, return_cache=return_cache)


def make_sampler(decode_fn: DecodeFn, num_new: int, top_k: int = 0, greedy: bool = False,
                 return_cache: bool = False) -> Callable:
  """A jitted `(cache, prompt, rng, temperature=1.0, top_p=None) -> tokens` for fixed statics.

  The same program as `sample`, with the static arguments bound up front, so
  the result can be called with a traced temperature (e.g. inside another jit).
  `temperature` is ignored when `greedy`; `top_p=None` leaves nucleus filtering
  out of the program, a number (traced) puts it in. Returns i32[B, P + num_new]
  (or (tokens, cache) with `return_cache`).
  """
  def run(cache, prompt, rng, temperature=1.0, top_p=None):
    tokens, cache = _generate(decode_fn, cache, prompt, rng, temperature, top_p,
                              num_new=num_new, top_k=top_k, greedy=greedy)
    return (tokens, cache) if return_cache else tokens
  return jax.jit(run)


@functools.partial(jax.jit, static_argnames=("forward_fn", "num_new", "max_len", "top_k",
                                             "greedy"))
def _sample_full_jit(forward_fn, prompt, rng, temperature, top_p, *, num_new, max_len, top_k,
                     greedy):
  prompt = jnp.asarray(prompt, jnp.int32)
  b, p = prompt.shape
  # Positions past the filled prefix hold 0; causality keeps them out of the logits read.
  buf = jnp.zeros((b, max_len), jnp.int32).at[:, :p].set(prompt)

  def step(buf, i):
    logits = forward_fn(buf)                                      # f32[B, max_len, V]
    last = lax.dynamic_index_in_dim(logits, p + i - 1, axis=1, keepdims=False)
    tok = _pick(last, rng, i, temperature, top_k, top_p, greedy)
    return lax.dynamic_update_index_in_dim(buf, tok, p + i, axis=1), None

  buf, _ = lax.scan(step, buf, jnp.arange(num_new, dtype=jnp.int32))
  return buf[:, :p + num_new]


def sample_full(forward_fn: ForwardFn, prompt: jax.Array, num_new: int, rng: jax.Array,
                max_len: int, temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0) -> jax.Array:
  """`sample` without a cache: re-runs the full forward over a fixed buffer every step.

  Each of the `num_new` scan steps runs `forward_fn` on all `max_len`
  positions (the prompt, the tokens so far, zero padding) and reads the logits
  at the last filled position, so the cost per token is that of a whole
  forward pass. Same keys and filtering as `sample`: equal logits give equal
  tokens. Static arguments as in `sample`, plus `max_len`.

  Args:
    forward_fn: causal `tokens i32[B, max_len] -> logits f32[B, max_len, V]`. Static.
    prompt: i32[B, P] with P >= 1.
    num_new: tokens to generate, P + num_new <= max_len. Static.
    rng: PRNG key; token i uses `fold_in(rng, i)`. Unused when greedy.
    max_len: buffer length, e.g. the model's context size. Static.
    temperature, top_k, top_p: as in `sample`.

  Returns:
    i32[B, P + num_new].
  """
  p = prompt.shape[1]
  if p + num_new > max_len:
    raise ValueError(f"prompt length {p} + num_new {num_new} exceeds max_len {max_len}")
  greedy = bool(temperature == 0)   # concrete: its zero-ness picks the program
  top_p = None if _nucleus_off(top_p) else top_p
  return _sample_full_jit(forward_fn, prompt, rng, 1.0 if greedy else temperature, top_p,
                          num_new=num_new, max_len=max_len, top_k=top_k, greedy=greedy)
