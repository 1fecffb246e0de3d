"""Ancestral sampling of autoregressive models: cached loops and re-forward references.

Each sampler is one `lax.scan` (or `fori_loop`) over positions, so a jitted
caller runs the whole sample as one program, never a Python loop per pixel.
Two kinds:
  cached     the model keeps what earlier positions computed (NADE's running
             hidden pre-activation, MADE's first-layer pre-activation, the
             PixelCNN's per-layer activation buffers) and computes only what
             the next position needs: one full forward pass of work in all.
  naive      re-runs the whole forward pass for every position: D passes.
Value t (0-based, in sampling order) is drawn with key `fold_in(rng, t)` in
both, by the same `draw`, so for the same model and key they return the same
sample (up to float rounding of the logits, which flips a draw only when a
uniform lands within ~1e-7 of a threshold).

Callables (all pure, batch-first, n samples):
  draw(out f32[n, P], key) -> f32[n]                   one value per sample
  sequences: step(cache, d) -> (out f32[n, P], cache)   head of dimension d
             write(cache, d, value f32[n]) -> cache
             forward(x f32[n, D]) -> f32[n, D, P]
  images:    row(cache, i) -> cache                     work done once per row
             pixel(cache, i, j) -> (out f32[n, C, P], cache)
             write(cache, i, j, c, value f32[n]) -> cache
             forward(x f32[n, H, W, C]) -> f32[n, H, W, C, P]
Channels of a pixel are drawn in order c = 0 .. C-1 (R -> G -> B), each after
a fresh `pixel` call that sees the channels drawn before it.
"""
import jax
import jax.numpy as jnp
from jax import lax


def sample_sequence(cache, step, write, draw, order: jax.Array, x0: jax.Array, rng: jax.Array):
  """x f32[n, D]: dimension order[t] drawn at step t from the cached model."""

  def body(carry, t):
    cache, x = carry
    d = order[t]
    out, cache = step(cache, d)
    v = draw(out, jax.random.fold_in(rng, t))
    return (write(cache, d, v), x.at[:, d].set(v)), None

  (_, x), _ = lax.scan(body, (cache, x0), jnp.arange(order.shape[0]))
  return x


def sample_sequence_naive(forward, draw, order: jax.Array, x0: jax.Array, rng: jax.Array):
  """x f32[n, D] by a full forward pass per dimension (the reference for `sample_sequence`)."""

  def body(t, x):
    d = order[t]
    out = forward(x)[:, d]
    return x.at[:, d].set(draw(out, jax.random.fold_in(rng, t)))

  return lax.fori_loop(0, order.shape[0], body, x0)


def sample_raster(cache, row, pixel, write, draw, x0: jax.Array, rng: jax.Array):
  """x f32[n, H, W, C] in raster order (rows, columns, channels) from the cached model."""
  _, h, w, c = x0.shape

  def col(carry, j, i):
    cache, x = carry
    for ch in range(c):       # static and small: C pixel passes per pixel
      out, cache = pixel(cache, i, j)
      v = draw(out[:, ch], jax.random.fold_in(rng, (i * w + j) * c + ch))
      cache = write(cache, i, j, ch, v)
      x = x.at[:, i, j, ch].set(v)
    return (cache, x), None

  def body(carry, i):
    cache, x = carry
    carry, _ = lax.scan(lambda cr, j: col(cr, j, i), (row(cache, i), x), jnp.arange(w))
    return carry, None

  (_, x), _ = lax.scan(body, (cache, x0), jnp.arange(h))
  return x


def sample_raster_naive(forward, draw, x0: jax.Array, rng: jax.Array):
  """x f32[n, H, W, C] by a full forward pass per sub-pixel (the reference for `sample_raster`)."""
  _, h, w, c = x0.shape

  def body(t, x):
    i, j, ch = t // (w * c), (t // c) % w, t % c
    out = forward(x)[:, i, j, ch]
    return x.at[:, i, j, ch].set(draw(out, jax.random.fold_in(rng, t)))

  return lax.fori_loop(0, h * w * c, body, x0)
