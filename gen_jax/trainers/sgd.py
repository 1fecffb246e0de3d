"""The generic gradient trainer: N players, each with its own optax optimizer.

One train step updates the players in `family.players` order; player p takes
`family.num_updates(p)` consecutive updates (e.g. 5 critic steps, then one
generator step). Each update differentiates `family.loss(p, ...)` w.r.t.
`params[p]` only, so a player's update never changes another player's
parameters. Non-gradient `state` returned by the loss is threaded through.
"""
import jax
import jax.numpy as jnp
import optax

from gen_jax import optim, parallel, types


def make(family: types.Family, config) -> types.Trainer:
  txs = optim.make_optimizers(config, family.players)
  ema_decay = float(config.ema_decay)
  multi = len(family.players) > 1

  def init(rng, batch):
    params, state = family.init(rng, batch)
    opt_state = {p: txs[p].init(params[p]) for p in family.players}
    ema = params if ema_decay > 0 else None
    return types.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                            opt_state=opt_state, state=state, ema=ema)

  def step(ts: types.TrainState, batch, rng):
    params, opt_state, state = dict(ts.params), dict(ts.opt_state), ts.state
    metrics = {}
    for player in family.players:
      for j in range(family.num_updates(player)):
        rng_update = parallel.fold(rng, player, j)

        def loss_fn(p, player=player, state=state, rng_update=rng_update):
          return family.loss(player, {**params, player: p}, state, batch, rng_update)

        (loss, (state, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params[player])
        updates, opt_state[player] = txs[player].update(grads, opt_state[player], params[player])
        params[player] = optax.apply_updates(params[player], updates)
      prefix = f"{player}/" if multi else ""
      metrics[prefix + "loss"] = loss
      metrics[prefix + "grad_norm"] = optax.tree.norm(grads)
      metrics.update({prefix + k: v for k, v in aux.items()})
    ema = ts.ema
    if ema is not None:
      ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, params)
    return types.TrainState(step=ts.step + 1, params=params, opt_state=opt_state,
                            state=state, ema=ema), metrics

  return types.Trainer(init=init, step=step)
