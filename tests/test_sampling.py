"""Token samplers: a one-hot "next = last + 1" model, a tiny causal attention model, statistics."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gen_jax.inference import sampling

pytestmark = pytest.mark.usefixtures("cheap_compiles")

V = 16          # vocabulary of the fake models
MAX_LEN = 12    # positions the fake cache and the tiny model hold


# ---- Fake model: logits at each position favour (token + 1) % V. ----

def _successor_logits(tokens, margin):
  return margin * jax.nn.one_hot((tokens + 1) % V, V)          # f32[B, T, V]


def _fake_cache():
  """Records every position decode_fn is asked for, in call order (-1 = unused slot)."""
  return {"seen": jnp.full((MAX_LEN,), -1, jnp.int32), "n": jnp.int32(0)}


def _record(cache, tokens, pos):
  t = tokens.shape[1]
  seen = lax.dynamic_update_slice(cache["seen"], pos + jnp.arange(t, dtype=jnp.int32),
                                  (cache["n"],))
  return {"seen": seen, "n": cache["n"] + t}


def fake_decode(tokens, cache, pos):
  return _successor_logits(tokens, 30.0), _record(cache, tokens, pos)


# A small margin: plain sampling often leaves the successor, so top_k=1 is what makes it exact.
def soft_decode(tokens, cache, pos):
  return _successor_logits(tokens, 1.0), _record(cache, tokens, pos)


def soft_forward(tokens):
  return _successor_logits(tokens, 1.0)


def test_greedy_generates_successors():
  out = sampling.sample(fake_decode, _fake_cache(), jnp.array([[5]]), 3, None, temperature=0)
  assert out.dtype == jnp.int32
  np.testing.assert_array_equal(out, [[5, 6, 7, 8]])


def test_prompt_is_prefilled():
  out = sampling.sample(fake_decode, _fake_cache(), jnp.array([[2, 3], [14, 15]]), 4,
                        jax.random.key(0), temperature=0)
  np.testing.assert_array_equal(out, [[2, 3, 4, 5, 6, 7], [14, 15, 0, 1, 2, 3]])


def test_decode_positions_are_prefill_then_one_per_step():
  prompt = jnp.array([[2, 3, 4]])
  num_new = 5
  out, cache = sampling.sample(fake_decode, _fake_cache(), prompt, num_new, None, temperature=0,
                               return_cache=True)
  p = prompt.shape[1]
  # One call for positions 0..P-1, then P, P+1, ...; the last new token is never fed back.
  want = list(range(p)) + [p + i for i in range(num_new - 1)]
  assert int(cache["n"]) == len(want)
  np.testing.assert_array_equal(cache["seen"][:len(want)], want)
  np.testing.assert_array_equal(cache["seen"][len(want):], -1)
  np.testing.assert_array_equal(out, [[2, 3, 4, 5, 6, 7, 8, 9]])


def test_top_k_one_equals_greedy():
  prompt = jnp.array([[1, 7], [3, 9], [0, 15]])
  greedy = sampling.sample(soft_decode, _fake_cache(), prompt, 6, None, temperature=0)
  for seed in range(3):
    rng = jax.random.key(seed)
    k1 = sampling.sample(soft_decode, _fake_cache(), prompt, 6, rng, temperature=1.0, top_k=1)
    np.testing.assert_array_equal(k1, greedy)
  # Without the filter a margin of 1 leaves the successor most of the time.
  free = sampling.sample(soft_decode, _fake_cache(), prompt, 6, jax.random.key(0))
  assert not np.array_equal(free, greedy)


def test_num_new_zero_and_one():
  prompt = jnp.array([[4, 5]])
  np.testing.assert_array_equal(
      sampling.sample(fake_decode, _fake_cache(), prompt, 0, None, temperature=0), prompt)
  out, cache = sampling.sample(fake_decode, _fake_cache(), prompt, 1, None, temperature=0,
                               return_cache=True)
  np.testing.assert_array_equal(out, [[4, 5, 6]])
  assert int(cache["n"]) == 2                              # the prefill only


# ---- filter_logits ----

# Jitted so each case is one compile instead of one per primitive; top_p static keeps the
# Python-value paths (1.0 = off) under test, traced_filter covers a traced top_p.
static_filter = jax.jit(sampling.filter_logits, static_argnames=("top_k", "top_p"))
traced_filter = jax.jit(sampling.filter_logits, static_argnames=("top_k",))


def _kept(x):
  return np.isfinite(np.asarray(x))


def test_top_k_keeps_exactly_k_largest():
  logits = jax.random.normal(jax.random.key(0), (4, 50))
  out = static_filter(logits, top_k=5)
  kept = _kept(out)
  assert (kept.sum(-1) == 5).all()
  top5 = np.argsort(-np.asarray(logits), axis=-1)[:, :5]
  np.testing.assert_array_equal(np.sort(np.nonzero(kept)[1].reshape(4, 5), -1), np.sort(top5, -1))
  np.testing.assert_array_equal(np.asarray(out)[kept], np.asarray(logits)[kept])
  # Ties: still exactly k, the lowest indices first.
  np.testing.assert_array_equal(_kept(static_filter(jnp.zeros(6), top_k=3)),
                                [1, 1, 1, 0, 0, 0])
  # 0 and k >= V are off.
  assert _kept(static_filter(logits, top_k=0)).all()
  assert _kept(static_filter(logits, top_k=50)).all()


@pytest.mark.parametrize("perm", [[0, 1, 2, 3], [2, 0, 3, 1]])
def test_top_p_on_known_probabilities(perm):
  probs = np.array([0.5, 0.3, 0.15, 0.05])[perm]
  logits = jnp.log(jnp.asarray(probs, jnp.float32))
  inv = np.argsort(perm)                    # back to the order 0.5, 0.3, 0.15, 0.05
  np.testing.assert_array_equal(_kept(static_filter(logits, top_p=0.8))[inv],
                                [1, 1, 0, 0])
  np.testing.assert_array_equal(_kept(static_filter(logits, top_p=0.81))[inv],
                                [1, 1, 1, 0])
  np.testing.assert_array_equal(_kept(static_filter(logits, top_p=0.5))[inv],
                                [1, 0, 0, 0])
  assert _kept(static_filter(logits, top_p=1.0)).all()


def test_top_p_never_removes_the_argmax():
  logits = 3.0 * jax.random.normal(jax.random.key(1), (64, 30))
  for p in [0.0, 1e-6, 0.05, 0.3, 0.9]:
    kept = _kept(traced_filter(logits, top_p=p))
    assert p > 0 or (kept.sum(-1) == 1).all()
    assert kept[np.arange(64), np.argmax(logits, -1)].all()
  one = static_filter(jnp.log(jnp.array([0.05, 0.9, 0.05])), top_p=0.3)
  np.testing.assert_array_equal(_kept(one), [0, 1, 0])


def test_top_p_applies_to_the_renormalized_top_k():
  logits = jnp.log(jnp.array([0.4, 0.3, 0.2, 0.1]))
  # Alone, 0.4 < 0.5 so the second token stays; after top-2 it has 4/7 > 0.5 above it.
  np.testing.assert_array_equal(_kept(static_filter(logits, top_p=0.5)), [1, 1, 0, 0])
  np.testing.assert_array_equal(_kept(static_filter(logits, top_k=2, top_p=0.5)),
                                [1, 0, 0, 0])


def test_traced_top_p_matches_python_value():
  logits = 2.0 * jax.random.normal(jax.random.key(2), (8, 20))
  for p in [0.2, 0.7, 1.0]:
    np.testing.assert_array_equal(traced_filter(logits, top_k=7, top_p=p),
                                  static_filter(logits, top_k=7, top_p=p))
  # A traced 1.0 keeps even a token whose mass above rounds to 1.
  assert _kept(traced_filter(jnp.array([0.0, -30.0, -40.0]), top_p=1.0)).all()


# ---- Sampling statistics ----

FIXED = jnp.array([1.0, 0.0, -1.0, 2.0, 0.5])


def fixed_decode(tokens, cache, pos):
  del pos
  return jnp.broadcast_to(FIXED, tokens.shape + FIXED.shape), cache


def _frequencies(temperature, top_k=0, top_p=1.0, rows=4000, steps=5):
  """Token counts over rows * steps draws (20k by default) -> f64[V]."""
  out = sampling.sample(fixed_decode, (), jnp.zeros((rows, 1), jnp.int32), steps,
                        jax.random.key(3), temperature=temperature, top_k=top_k, top_p=top_p)
  new = np.asarray(out[:, 1:])
  # Each step draws with its own key: columns differ.
  assert not (new == new[:, :1]).all()
  return np.bincount(new.ravel(), minlength=FIXED.size) / new.size, new.size


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_frequencies_match_tempered_softmax(temperature):
  freq, n = _frequencies(temperature)
  want = np.asarray(jax.nn.softmax(FIXED / temperature))
  np.testing.assert_array_less(np.abs(freq - want), 4 * np.sqrt(want * (1 - want) / n) + 1e-9)


def test_frequencies_match_filtered_softmax():
  # Probabilities at T=1 are about [.20, .07, .03, .54, .12]: top-3 keeps {3, 0, 4}, then
  # top_p=0.7 keeps {3, 0} (mass above token 4 is 0.86 of the renormalized three).
  freq, n = _frequencies(1.0, top_k=3, top_p=0.7)
  want = np.zeros(FIXED.size)
  want[[0, 3]] = np.asarray(jax.nn.softmax(FIXED[jnp.array([0, 3])]))
  np.testing.assert_array_less(np.abs(freq - want), 4 * np.sqrt(want * (1 - want) / n) + 1e-9)


# ---- Compilation ----

TRACES = []


def counting_decode(tokens, cache, pos):
  TRACES.append(tokens.shape)                  # runs only while tracing
  return fake_decode(tokens, cache, pos)


def test_sample_compiles_once_per_shape():
  TRACES.clear()
  outs = []
  for seed in range(4):
    prompt = jax.random.randint(jax.random.key(100 + seed), (2, 3), 0, V)
    outs.append(sampling.sample(counting_decode, _fake_cache(), prompt, 5, jax.random.key(seed),
                                temperature=0.5 + 0.25 * seed, top_p=0.9 - 0.1 * seed))
    if seed == 0:
      first = len(TRACES)
  assert first == 2                            # prefill + the scan body, traced once
  assert len(TRACES) == first
  np.testing.assert_array_equal(outs[-1][:, 3:], (outs[-1][:, 2:-1] + 1) % V)


def test_make_sampler_matches_sample_and_takes_a_traced_temperature():
  prompt = jnp.array([[1, 2], [3, 4]])
  rng = jax.random.key(7)
  run = sampling.make_sampler(soft_decode, 6, top_k=4)
  want = sampling.sample(soft_decode, _fake_cache(), prompt, 6, rng, temperature=0.8, top_k=4,
                         top_p=0.95)
  np.testing.assert_array_equal(run(_fake_cache(), prompt, rng, 0.8, 0.95), want)
  inside = jax.jit(lambda t: run(_fake_cache(), prompt, rng, t, 0.95))
  np.testing.assert_array_equal(inside(0.8), want)


# ---- sample_full == sample ----

@pytest.mark.parametrize("kwargs", [dict(temperature=0), dict(temperature=1.0),
                                    dict(temperature=0.7, top_k=3, top_p=0.9)])
def test_full_equals_cached_on_fake_model(kwargs):
  prompt = jnp.array([[2, 3], [9, 0], [15, 4]])
  rng = jax.random.key(11)
  cached = sampling.sample(soft_decode, _fake_cache(), prompt, 8, rng, **kwargs)
  full = sampling.sample_full(soft_forward, prompt, 8, rng, MAX_LEN, **kwargs)
  np.testing.assert_array_equal(full, cached)


D = 16  # width of the tiny attention model


def _tiny_params():
  r = np.random.default_rng(0)
  n = lambda *shape: jnp.asarray(r.normal(size=shape), jnp.float32)
  return {"wte": n(V, D), "wpe": n(MAX_LEN, D), "wq": n(D, D) / 4, "wk": n(D, D) / 4,
          "wv": n(D, D) / 4, "wo": n(D, V) / 2}


PARAMS = _tiny_params()


def _attend(params, x, k, v, q_pos):
  """One causal attention layer and the output head: f32[B, T, D] -> f32[B, T, V].

  k, v: f32[B, S, D] for key positions 0..S-1; query t sits at position q_pos[t].
  """
  q = x @ params["wq"]
  scores = jnp.einsum("btd,bsd->bts", q, k) / np.sqrt(D)
  visible = jnp.arange(k.shape[1])[None, :] <= q_pos[:, None]             # bool[T, S]
  att = jax.nn.softmax(jnp.where(visible, scores, -jnp.inf), axis=-1)
  return (x + jnp.einsum("bts,bsd->btd", att, v)) @ params["wo"]


def tiny_forward(tokens):
  x = PARAMS["wte"][tokens] + PARAMS["wpe"][:tokens.shape[1]]
  return _attend(PARAMS, x, x @ PARAMS["wk"], x @ PARAMS["wv"], jnp.arange(tokens.shape[1]))


def tiny_decode(tokens, cache, pos):
  t = tokens.shape[1]
  x = PARAMS["wte"][tokens] + lax.dynamic_slice_in_dim(PARAMS["wpe"], pos, t)
  k = lax.dynamic_update_slice_in_dim(cache["k"], x @ PARAMS["wk"], pos, axis=1)
  v = lax.dynamic_update_slice_in_dim(cache["v"], x @ PARAMS["wv"], pos, axis=1)
  return _attend(PARAMS, x, k, v, pos + jnp.arange(t)), {"k": k, "v": v}


def _tiny_cache(b):
  return {"k": jnp.zeros((b, MAX_LEN, D)), "v": jnp.zeros((b, MAX_LEN, D))}


def test_tiny_model_cache_matches_forward():
  tokens = jax.random.randint(jax.random.key(5), (2, MAX_LEN), 0, V)
  full = jax.jit(tiny_forward)(tokens)
  decode = jax.jit(tiny_decode)
  pre, cache = decode(tokens[:, :4], _tiny_cache(2), jnp.int32(0))
  one, _ = decode(tokens[:, 4:5], cache, jnp.int32(4))
  np.testing.assert_allclose(pre, full[:, :4], atol=1e-5)
  np.testing.assert_allclose(one[:, 0], full[:, 4], atol=1e-5)
  assert float(jnp.std(full)) > 1.0          # logits spread enough that sampling varies


@pytest.mark.parametrize("kwargs", [dict(temperature=0), dict(temperature=1.0),
                                    dict(temperature=0.8, top_k=5, top_p=0.9)])
def test_full_equals_cached_on_tiny_model(kwargs):
  prompt = jax.random.randint(jax.random.key(6), (4, 3), 0, V)
  for seed in range(2):
    rng = jax.random.key(seed)
    cached = sampling.sample(tiny_decode, _tiny_cache(4), prompt, 9, rng, **kwargs)
    full = sampling.sample_full(tiny_forward, prompt, 9, rng, MAX_LEN, **kwargs)
    np.testing.assert_array_equal(full, cached)
    np.testing.assert_array_equal(cached[:, :3], prompt)


def test_full_rejects_overlong_request():
  with pytest.raises(ValueError, match="max_len"):
    sampling.sample_full(tiny_forward, jnp.zeros((1, 4), jnp.int32), 9, None, MAX_LEN,
                         temperature=0)
