"""Optimizers from config: `config.optim[player]` -> optax.GradientTransformation.

Keys of one player's section:
  name: "adam" | "adamw" | "sgd" | "frozen" (no updates, e.g. lower DBN layers)
  lr: peak learning rate; b1, b2, eps: Adam moments; weight_decay: AdamW only
  decay: which parameters AdamW decays: "all", or "matrices" (arrays with
         >= 2 dimensions: weights and embeddings, not biases or norm scales,
         as nanoGPT and GPT-2 do)
  schedule: "constant" | "cosine" (warmup then cosine to lr * final_lr_frac)
            | "burda" (lr * 10^(-i/7) for 3^i epochs, i = 0..rounds-1,
              Burda et al. 2015; epochs last epoch_steps each)
  warmup_steps, decay_steps, final_lr_frac: for "cosine"
  epoch_steps, rounds: for "burda"
  grad_clip_norm: 0 disables global-norm clipping
"""
import jax
import ml_collections
import optax

from gen_jax import errors

OPTIMIZERS = ("adam", "adamw", "sgd", "frozen")
SCHEDULES = ("constant", "cosine", "burda")
DECAY = ("all", "matrices")


def burda_schedule(lr: float, epoch_steps: int, rounds: int) -> optax.Schedule:
  """lr * 10^(-i/7) for 3^i epochs of `epoch_steps` steps, i = 0..rounds-1.

  Past the last round the rate stays at the last value.
  """
  boundaries, step = {}, 0
  for i in range(rounds - 1):
    step += 3**i * epoch_steps
    boundaries[step] = 10.0**(-1.0 / 7.0)
  return optax.piecewise_constant_schedule(lr, boundaries)


def burda_total_steps(epoch_steps: int, rounds: int) -> int:
  """Length of the full Burda schedule: sum_i 3^i epochs."""
  return sum(3**i for i in range(rounds)) * epoch_steps


def make_schedule(c: ml_collections.ConfigDict) -> optax.Schedule:
  kind = c.get("schedule", "constant")
  if kind == "constant":
    return optax.constant_schedule(c.lr)
  if kind == "cosine":
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=c.lr, warmup_steps=c.warmup_steps,
        decay_steps=c.decay_steps, end_value=c.lr * c.final_lr_frac)
  if kind == "burda":
    return burda_schedule(c.lr, c.epoch_steps, c.rounds)
  raise errors.ConfigError(errors.choices("schedule", kind, SCHEDULES))


def make_optimizer(c: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Builds one player's optimizer (with optional global-norm clipping)."""
  name = c.get("name", "")
  if name not in OPTIMIZERS:
    raise errors.ConfigError(errors.choices("optimizer", name, OPTIMIZERS))
  if name == "frozen":
    return optax.set_to_zero()
  lr = make_schedule(c)
  if name == "adam":
    tx = optax.adam(lr, b1=c.b1, b2=c.b2, eps=c.eps)
  elif name == "adamw":
    decay = c.get("decay", "all")
    if decay not in DECAY:
      raise errors.ConfigError(errors.choices("optim decay", decay, DECAY))
    mask = None if decay == "all" else (
        lambda params: jax.tree.map(lambda p: p.ndim >= 2, params))
    tx = optax.adamw(lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay, mask=mask)
  else:
    tx = optax.sgd(lr, momentum=c.get("momentum", 0.0) or None)
  clip = c.get("grad_clip_norm", 0.0)
  return optax.chain(optax.clip_by_global_norm(clip), tx) if clip > 0 else tx


def make_optimizers(config: ml_collections.ConfigDict, players) -> dict:
  """{player: optimizer}; every player needs a section in config.optim."""
  missing = [p for p in players if p not in config.optim]
  if missing:
    raise errors.ConfigError(
        f"config.optim has no section for player(s) {', '.join(missing)}; "
        f"this family's players are: {', '.join(players)}")
  extra = [p for p in config.optim if p not in players]
  if extra:
    raise errors.ConfigError(errors.choices("optim player", extra[0], players))
  return {p: make_optimizer(config.optim[p]) for p in players}


def adam(lr: float, **kw) -> ml_collections.ConfigDict:
  """A complete Adam section with every key stated (for experiment files)."""
  c = dict(name="adam", lr=lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
           schedule="constant", warmup_steps=0, decay_steps=1, final_lr_frac=1.0,
           epoch_steps=1, rounds=1, grad_clip_norm=0.0)
  c.update(kw)
  return ml_collections.ConfigDict(c)
