"""GAN objectives on discriminator outputs, and the WGAN-GP gradient penalty.

Every loss takes raw discriminator outputs (logits for the non-saturating
loss, unbounded critic values for hinge and Wasserstein), `f32[B]` each, and
returns the scalar mean over the batch; both players minimize their loss.

  nonsaturating  D: softplus(-D(x)) + softplus(D(G(z)))   (Goodfellow et al. 2014)
                 G: softplus(-D(G(z)))                    (the "-log D" generator loss)
  hinge          D: relu(1 - D(x)) + relu(1 + D(G(z)))    (Lim & Ye 2017; Miyato et al. 2018)
                 G: -D(G(z))
  wasserstein    D: D(G(z)) - D(x)                        (Arjovsky et al. 2017)
                 G: -D(G(z))

The Wasserstein critic needs a Lipschitz constraint, e.g. `gradient_penalty`
(Gulrajani et al. 2017) added to its loss with weight lambda (10 in the paper),
or spectral normalization (flax.linen.SpectralNorm).
"""
from typing import Callable

import jax
import jax.numpy as jnp

# Inside the square root of the gradient norm: d||g||/dg = g/||g|| is 0/0 at
# g = 0 (a critic that is flat there, e.g. dead ReLUs), which would make the
# penalty's own gradient NaN. With 1e-12 a zero gradient reads as norm 1e-6,
# and a norm of order 1 moves by ~5e-13.
_NORM_EPS = 1e-12


def d_loss_nonsaturating(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """-log sigmoid(real) - log(1 - sigmoid(fake)), mean: f32[B], f32[B] -> f32[]."""
  # -log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l), stable for any l.
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def g_loss_nonsaturating(fake_logits: jax.Array) -> jax.Array:
  """-log sigmoid(fake), mean: f32[B] -> f32[]."""
  return jnp.mean(jax.nn.softplus(-fake_logits))


def d_loss_hinge(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """relu(1 - real) + relu(1 + fake), mean: f32[B], f32[B] -> f32[]."""
  return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def g_loss_hinge(fake_logits: jax.Array) -> jax.Array:
  """-fake, mean: f32[B] -> f32[]."""
  return -jnp.mean(fake_logits)


def d_loss_wasserstein(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """fake - real, mean (minus the critic's estimate of W1): f32[B], f32[B] -> f32[]."""
  return jnp.mean(fake_logits) - jnp.mean(real_logits)


def g_loss_wasserstein(fake_logits: jax.Array) -> jax.Array:
  """-fake, mean: f32[B] -> f32[]."""
  return -jnp.mean(fake_logits)


# name -> (d_loss(real_logits, fake_logits), g_loss(fake_logits)).
LOSSES = {
    "nonsaturating": (d_loss_nonsaturating, g_loss_nonsaturating),
    "hinge": (d_loss_hinge, g_loss_hinge),
    "wasserstein": (d_loss_wasserstein, g_loss_wasserstein),
}


def gradient_penalty(critic_fn: Callable[[jax.Array], jax.Array], real: jax.Array,
                     fake: jax.Array, rng: jax.Array) -> jax.Array:
  """WGAN-GP penalty mean_i (||grad_x critic(x_hat_i)|| - 1)^2 (Gulrajani et al. 2017).

  x_hat = e * real + (1 - e) * fake with e = jax.random.uniform(rng, [B, 1, ..., 1]),
  one e per example. The norm is taken over ALL non-batch axes of the per-example
  gradient (for images, over H, W and C together), not over one axis.

  The per-example gradients are computed as the gradient of sum_i critic(x_hat)_i
  w.r.t. x_hat, which equals the stack of d critic(x_hat)_i / d x_hat_i only when
  example i's output does not depend on the other examples. A critic that mixes
  examples (BatchNorm in training mode, minibatch discrimination, PacGAN-style
  packing across the batch axis) makes this silently wrong; use per-example norms
  such as LayerNorm, as Gulrajani et al. recommend. Pass a closure that does not
  update state (e.g. flax SpectralNorm with update_stats=False).

  Args:
    critic_fn: f32[B, ...] -> f32[B]; closes over the critic's parameters, so
      differentiating the penalty w.r.t. them (double backprop) works.
    real: f32[B, ...] real examples.
    fake: f32[B, ...] generated examples, same shape as `real`.
    rng: PRNG key for the interpolation weights.

  Returns:
    f32[] penalty, to be added to the critic's loss times lambda (10 in the paper).
  """
  if real.shape != fake.shape:
    raise ValueError(f"real and fake must have one shape (got {real.shape} and {fake.shape})")
  e = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), dtype=real.dtype)
  x_hat = e * real + (1.0 - e) * fake
  grads = jax.grad(lambda x: jnp.sum(critic_fn(x)))(x_hat)
  sq_norm = jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1)
  norm = jnp.sqrt(sq_norm + _NORM_EPS)
  return jnp.mean(jnp.square(norm - 1.0))
