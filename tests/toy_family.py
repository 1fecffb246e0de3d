"""Tiny families for trainer tests (registered by monkeypatching registry.FAMILIES).

model.kind:
  "two_player": players ("a", "b"); L_a = |mean(x) - w_a|^2 + <w_a, w_b>,
    L_b = |w_b - w_a|^2; `a` takes model.updates_a updates per step; `state`
    counts loss calls (non-gradient state threaded by the trainer).
  "diverge": one player, L = scale * |w|^2, so SGD with lr * scale > 1
    multiplies w by (1 - 2 lr scale) every step until it overflows.
"""
import jax
import jax.numpy as jnp

from gen_jax import types

DIM = 3


def make(config, spec):
  del spec
  m = config.model

  def sample(params, state, rng, n):
    return jax.random.uniform(rng, (n, 4, 4, 1))

  def eval_fn(params, state, batch, rng, **kw):
    return {"sq": jnp.sum(batch["x"].reshape(len(batch["x"]), -1) ** 2, -1)}

  if m.kind == "diverge":
    def init(rng, batch):
      return {"model": {"w": jnp.ones((DIM,))}}, {}

    def loss(player, params, state, batch, rng):
      value = m.scale * jnp.sum(params["model"]["w"] ** 2) + 0.0 * batch["x"].mean()
      return value, (state, {})
    return types.Family(players=("model",), init=init, loss=loss, sample=sample,
                        eval_fn=eval_fn)

  def init(rng, batch):
    ra, rb = jax.random.split(rng)
    return ({"a": {"w": jax.random.normal(ra, (DIM,))},
             "b": {"w": jax.random.normal(rb, (DIM,))}},
            {"calls": jnp.zeros((), jnp.int32)})

  def loss(player, params, state, batch, rng):
    wa, wb = params["a"]["w"], params["b"]["w"]
    if player == "a":
      value = jnp.sum((batch["x"].mean() - wa) ** 2) + jnp.dot(wa, wb)
    else:
      value = jnp.sum((wb - wa) ** 2)
    return value, ({"calls": state["calls"] + 1}, {"w_norm": jnp.linalg.norm(params[player]["w"])})

  return types.Family(players=("a", "b"), init=init, loss=loss, sample=sample,
                      eval_fn=eval_fn, updates_per_step={"a": m.updates_a, "b": 1})
