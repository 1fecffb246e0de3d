"""Exact inference in hidden Markov models, in log space, one `lax.scan` per pass.

Every function takes ONE sequence and is vmapped over a batch of them:
  log_init   f[K]     log p(z_0 = k)
  log_trans  f[K, K]  log p(z_{t+1} = j | z_t = i) at [i, j]
  log_lik    f[T, K]  log p(x_t | z_t = k), the emission log-likelihoods
  length     i32[]    optional: steps t >= length are padding and change
                      nothing (None = all T steps are valid)
e.g. `jax.vmap(hmm_filter, in_axes=(None, None, 0, 0))(log_init, log_trans,
log_liks, lengths)`. All probabilities are handled as logs, so zero
probabilities (structural zeros, -inf) are allowed anywhere: `_lse` returns
-inf, never NaN, when every term is -inf, and passes a zero gradient there, so
the SGD route through `hmm_filter` stays finite with them. Results are in the
dtype of the inputs (float64 when jax_enable_x64 is on); log-probabilities are
nats.

Long sequences: the filter renormalises every step and sums per-step log
normalizers, the backward pass is scaled by the same normalizers and Viterbi
renormalises its scores every step (the offset is kept apart), so no pass ever
compares numbers of magnitude O(T). float32 still loses ~1e-7 relative in the
summed log-likelihood (dynamax f32 was 7.6 nats off at T = 1e5): evaluate long
sequences with x64, or compare per-step normalizers (`Filtered.log_scales`).

Costs per sequence: filter, backward, smoother, Viterbi and sampler O(T K^2)
sequential steps; the parallel filter O(T K^3) work in O(log T) depth.
"""
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax import lax


class Filtered(NamedTuple):
  """The forward pass of one sequence.

  Attributes:
    log_normalizer: f[] log p(x_{0:L}) (nats), L = length.
    log_filtered: f[T, K] log p(z_t | x_{0:t}); beyond the length, the last
      valid step's (or log_init for length 0).
    log_scales: f[T] log p(x_t | x_{0:t-1}), the per-step normalizers (they sum
      to log_normalizer); 0 beyond the length. The unnormalised forward
      lattice is log alpha_t = log_filtered[t] + cumsum(log_scales)[t].
  """
  log_normalizer: jax.Array
  log_filtered: jax.Array
  log_scales: jax.Array


class Posterior(NamedTuple):
  """Forward-backward smoothing of one sequence.

  Attributes:
    log_normalizer: f[] log p(x_{0:L}) (nats).
    smoothed: f[T, K] p(z_t | x_{0:L}); rows sum to 1 for t < L, 0 beyond.
    trans_counts: f[K, K] sum_t p(z_t = i, z_{t+1} = j | x_{0:L}), the expected
      transition counts (summed two-slice marginals, t + 1 < L).
    filtered: the forward pass it came from.
  """
  log_normalizer: jax.Array
  smoothed: jax.Array
  trans_counts: jax.Array
  filtered: Filtered


def _lse(x: jax.Array, axis=-1) -> jax.Array:
  """log sum exp over `axis`: -inf (not NaN) where every term is -inf, with a zero gradient."""
  m = jnp.max(x, axis=axis, keepdims=True)
  m = lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))
  s = jnp.sum(jnp.exp(x - m), axis=axis, keepdims=True)
  ok = s > 0
  out = jnp.where(ok, jnp.log(jnp.where(ok, s, 1.0)) + m, -jnp.inf)
  return jnp.squeeze(out, axis)


def _normalize(log_p: jax.Array, axis=-1) -> jax.Array:
  """log_p - logsumexp(log_p): stays -inf (not NaN) where everything is -inf."""
  c = _lse(log_p, axis)
  return log_p - jnp.expand_dims(jnp.where(jnp.isfinite(c), c, 0.0), axis)


def _length(log_lik: jax.Array, length) -> jax.Array:
  return jnp.asarray(log_lik.shape[0] if length is None else length, jnp.int32)


def _cast(*arrays):
  dtype = jnp.result_type(*arrays)
  dtype = dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32
  return tuple(jnp.asarray(a, dtype) for a in arrays)


def hmm_filter(log_init: jax.Array, log_trans: jax.Array, log_lik: jax.Array,
               length: Optional[jax.Array] = None) -> Filtered:
  """The forward algorithm (sequential `lax.scan` over t). Shapes: module docstring."""
  log_init, log_trans, log_lik = _cast(log_init, log_trans, log_lik)
  T = log_lik.shape[0]
  length = _length(log_lik, length)

  def step(carry, xs):
    log_pred, last_filt = carry          # log p(z_t | x_{<t}); last valid filter
    ll, t = xs
    joint = log_pred + ll                # log p(z_t, x_t | x_{<t})
    scale = _lse(joint)
    filt = joint - jnp.where(jnp.isfinite(scale), scale, 0.0)
    pred = _lse(filt[:, None] + log_trans, axis=0)
    valid = t < length
    carry = (jnp.where(valid, pred, log_pred), jnp.where(valid, filt, last_filt))
    return carry, (carry[1], jnp.where(valid, scale, 0.0))

  _, (log_filtered, log_scales) = lax.scan(step, (log_init, log_init),
                                           (log_lik, jnp.arange(T)))
  return Filtered(jnp.sum(log_scales), log_filtered, log_scales)


def hmm_filter_parallel(log_init: jax.Array, log_trans: jax.Array, log_lik: jax.Array,
                        length: Optional[jax.Array] = None) -> Filtered:
  """The forward algorithm as a `lax.associative_scan` (O(log T) depth, O(T K^3) work).

  Step t is the matrix E_t[i, j] = log_trans[i, j] + log_lik[t, j] (E_0 has
  every row log_init + log_lik[0]; padding steps are the identity), and the
  forward lattice is row 0 of the log-space product E_0 E_1 ... E_t. Each
  element is kept normalised (logsumexp 0) with its log scale apart, so the
  products never overflow. Gives the sequential filter's results.
  """
  log_init, log_trans, log_lik = _cast(log_init, log_trans, log_lik)
  T, K = log_lik.shape
  length = _length(log_lik, length)
  elems = log_trans[None] + log_lik[:, None, :]                     # [T, K, K]
  elems = elems.at[0].set(jnp.broadcast_to(log_init + log_lik[0], (K, K)))
  eye = jnp.where(jnp.eye(K, dtype=bool), 0.0, -jnp.inf).astype(elems.dtype)
  elems = jnp.where((jnp.arange(T) < length)[:, None, None], elems, eye)
  scales = _lse(_lse(elems, -1), -1)
  elems = elems - jnp.where(jnp.isfinite(scales), scales, 0.0)[:, None, None]

  def combine(a, b):
    (ma, sa), (mb, sb) = a, b
    m = _lse(ma[..., :, :, None] + mb[..., None, :, :], axis=-2)   # log-space ma @ mb
    s = _lse(_lse(m, -1), -1)
    s_ok = jnp.where(jnp.isfinite(s), s, 0.0)
    return m - s_ok[..., None, None], sa + sb + s_ok

  prods, log_scale = lax.associative_scan(combine, (elems, scales))
  log_alpha = prods[:, 0, :] + log_scale[:, None]                   # log p(z_t, x_{0:t})
  log_z = _lse(log_alpha)                                           # log p(x_{0:t})
  log_filtered = log_alpha - jnp.where(jnp.isfinite(log_z), log_z, 0.0)[:, None]
  log_scales = jnp.diff(log_z, prepend=jnp.zeros((1,), log_z.dtype))
  log_filtered = jnp.where(length > 0, log_filtered, log_init)
  return Filtered(jnp.where(length > 0, log_z[-1], 0.0), log_filtered,
                  jnp.where(jnp.arange(T) < length, log_scales, 0.0))


def hmm_backward(log_trans: jax.Array, log_lik: jax.Array, length: Optional[jax.Array] = None,
                 log_scales: Optional[jax.Array] = None) -> jax.Array:
  """The backward pass: f[T, K] log beta_t(i) - sum_{s > t} log_scales[s].

  log beta_t(i) = log p(x_{t+1:L} | z_t = i) (0 for t >= L - 1). Without
  `log_scales` the betas are unnormalised (they grow like O(T) in magnitude);
  with the filter's `log_scales` they are the scaled betas of Rabiner, and
  log_filtered + result = log p(z_t | x_{0:L}) exactly.
  """
  log_trans, log_lik = _cast(log_trans, log_lik)
  T, K = log_lik.shape
  length = _length(log_lik, length)
  scales = jnp.zeros((T,), log_lik.dtype) if log_scales is None else log_scales

  def step(lb_next, xs):
    ll_next, c_next, t = xs
    lb = _lse(log_trans + (ll_next + lb_next)[None, :], axis=1) - c_next
    lb = jnp.where(t + 1 < length, lb, 0.0)
    return lb, lb

  _, lbs = lax.scan(step, jnp.zeros((K,), log_lik.dtype),
                    (log_lik[1:], scales[1:], jnp.arange(T - 1)), reverse=True)
  return jnp.concatenate([lbs, jnp.zeros((1, K), lbs.dtype)])


def hmm_smoother(log_init: jax.Array, log_trans: jax.Array, log_lik: jax.Array,
                 length: Optional[jax.Array] = None) -> Posterior:
  """Forward-backward: smoothed marginals and expected transition counts (Baum-Welch E-step).

  One forward scan, then one reverse scan that computes the scaled betas and
  sums the two-slice marginals xi_t(i, j) = p(z_t = i, z_{t+1} = j | x) on the
  fly (memory O(T K), not O(T K^2)); each xi_t is normalised over (i, j) by
  its own logsumexp.
  """
  log_init, log_trans, log_lik = _cast(log_init, log_trans, log_lik)
  T, K = log_lik.shape
  length = _length(log_lik, length)
  filt = hmm_filter(log_init, log_trans, log_lik, length)

  def step(carry, xs):
    lb_next, counts = carry
    ll_next, c_next, lf, t = xs
    valid = t + 1 < length
    g = ll_next + lb_next                                   # [K] over z_{t+1}
    lb = jnp.where(valid, _lse(log_trans + g[None, :], axis=1) - c_next, 0.0)
    xi = lf[:, None] + log_trans + g[None, :]
    xi = jnp.exp(_normalize(xi.reshape(-1)).reshape(K, K))
    counts = counts + jnp.where(valid, xi, 0.0)
    return (lb, counts), lb

  zeros = jnp.zeros((K,), log_lik.dtype)
  (_, counts), lbs = lax.scan(
      step, (zeros, jnp.zeros((K, K), log_lik.dtype)),
      (log_lik[1:], filt.log_scales[1:], filt.log_filtered[:-1], jnp.arange(T - 1)),
      reverse=True)
  log_beta = jnp.concatenate([lbs, zeros[None]])
  smoothed = jnp.exp(_normalize(filt.log_filtered + log_beta))
  smoothed = jnp.where((jnp.arange(T) < length)[:, None], smoothed, 0.0)
  return Posterior(filt.log_normalizer, smoothed, counts, filt)


def hmm_two_slice(log_init: jax.Array, log_trans: jax.Array, log_lik: jax.Array,
                  length: Optional[jax.Array] = None) -> jax.Array:
  """f[T-1, K, K] two-slice marginals p(z_t = i, z_{t+1} = j | x_{0:L}); 0 where t + 1 >= L.

  Materialises O(T K^2); `hmm_smoother` gives their sum without doing so.
  """
  log_init, log_trans, log_lik = _cast(log_init, log_trans, log_lik)
  T, K = log_lik.shape
  length = _length(log_lik, length)
  filt = hmm_filter(log_init, log_trans, log_lik, length)
  lb = hmm_backward(log_trans, log_lik, length, filt.log_scales)
  xi = filt.log_filtered[:-1, :, None] + log_trans[None] + (log_lik[1:] + lb[1:])[:, None, :]
  xi = jnp.exp(_normalize(xi.reshape(T - 1, -1)).reshape(T - 1, K, K))
  return jnp.where((jnp.arange(1, T) < length)[:, None, None], xi, 0.0)


def hmm_viterbi(log_init: jax.Array, log_trans: jax.Array, log_lik: jax.Array,
                length: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
  """The most probable path: (i32[T] states, f[] its log joint log p(z, x_{0:L})).

  Max-product forward scan storing argmax back-pointers, then a reverse scan
  that backtracks. Scores are shifted to max 0 every step (the shift is summed
  apart), so float32 paths compare O(1) numbers even at T = 1e5. Ties go to
  the lower state index. Beyond the length the path repeats its last state.
  """
  log_init, log_trans, log_lik = _cast(log_init, log_trans, log_lik)
  T, K = log_lik.shape
  length = _length(log_lik, length)

  def shift(delta):
    m = jnp.max(delta)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    return delta - m, m

  delta0, off0 = shift(log_init + jnp.where(length > 0, log_lik[0], 0.0))

  def step(delta, xs):
    ll, t = xs
    scores = delta[:, None] + log_trans                      # [i, j]
    ptr = jnp.argmax(scores, axis=0)
    new, m = shift(jnp.max(scores, axis=0) + ll)
    valid = t < length
    return jnp.where(valid, new, delta), (jnp.where(valid, ptr, jnp.arange(K)),
                                          jnp.where(valid, m, 0.0))

  delta, (ptrs, shifts) = lax.scan(step, delta0, (log_lik[1:], jnp.arange(1, T)))
  offset = off0 + jnp.sum(shifts)      # a tree sum, not a running f32 one
  last = jnp.argmax(delta)

  def back(z, ptr):
    z_prev = ptr[z]
    return z_prev, z_prev

  _, path = lax.scan(back, last, ptrs, reverse=True)
  path = jnp.concatenate([path, last[None]]).astype(jnp.int32)
  return path, jnp.where(length > 0, jnp.max(delta) + offset, 0.0)


def hmm_posterior_sample(rng: jax.Array, log_init: jax.Array, log_trans: jax.Array,
                         log_lik: jax.Array, length: Optional[jax.Array] = None) -> jax.Array:
  """One path z ~ p(z_{0:L} | x_{0:L}) by forward filtering, backward sampling: i32[T].

  z_{L-1} ~ p(z_{L-1} | x), then z_t ~ p(z_t | z_{t+1}, x_{0:t}) backwards;
  key t = split(rng, T)[t] draws z_t. Steps beyond the length are drawn from
  the last filter (independent of the path; ignore them).
  """
  log_init, log_trans, log_lik = _cast(log_init, log_trans, log_lik)
  T, _ = log_lik.shape
  length = _length(log_lik, length)
  filt = hmm_filter(log_init, log_trans, log_lik, length)
  keys = jax.random.split(rng, T)
  last = jax.random.categorical(keys[-1], filt.log_filtered[-1])

  def step(z_next, xs):
    key, lf, t = xs
    logits = lf + jnp.where(t + 1 < length, log_trans[:, z_next], 0.0)
    z = jax.random.categorical(key, logits)
    return z, z

  _, path = lax.scan(step, last, (keys[:-1], filt.log_filtered[:-1], jnp.arange(T - 1)),
                     reverse=True)
  return jnp.concatenate([path, last[None]]).astype(jnp.int32)
