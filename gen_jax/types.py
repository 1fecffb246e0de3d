"""The family contract and the training state shared by every trainer.

A family is a frozen bundle of pure functions (see `Family`). Parameters are
plain pytrees keyed by player name, so a GAN is `{"d": ..., "g": ...}` and a VAE
is `{"model": ...}`; non-gradient variables (BatchNorm statistics, persistent
Gibbs chains, spectral-norm vectors) live in `state` and are threaded through
`loss` by the trainer.
"""
import dataclasses
from typing import Any, Callable, Mapping, Optional

import flax.struct
import jax

PyTree = Any
Batch = Mapping[str, jax.Array]
Metrics = Mapping[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Family:
  """Pure functions that define one generative model family.

  Attributes:
    players: names of the parameter groups, each with its own optimizer, in
      update order, e.g. ("model",) or ("d", "g").
    init: `init(rng, batch) -> (params, state)`; `params[player]` is a pytree.
    loss: `loss(player, params, state, batch, rng) -> (scalar, (state, metrics))`.
      The trainer differentiates w.r.t. `params[player]` only; `metrics` are
      scalars (global batch means).
    sample: `sample(params, state, rng, n) -> array[n, ...]` in data space
      (images f32 in [0, 1], points f32, token ids i32), of the modality of
      the data field `sample_field`; the loop writes it accordingly (PNG grid,
      scatter plot, text, CSV).
    eval_fn: `eval_fn(params, state, batch, rng, **kw) -> {name: f32[B]}`,
      per-example values that evaluators average under a padding mask.
    updates_per_step: how many updates each player takes per train step
      (e.g. {"d": 5, "g": 1} for WGAN-GP); default one each.
    encode / decode: optional latent maps used by interpolation and
      reconstruction evaluators: `encode(params, state, x) -> z` (posterior
      mean), `decode(params, state, z) -> x` (decoder mean).
    eval_units: {metric name: description} printed next to evaluated values,
      e.g. "nats, lower bound".
    eval_weights: {metric name: weight name}: the metric's mean over a split
      is weighted by the per-example value `eval_fn` returns under the weight
      name (e.g. a per-example mean loss per token, weighted by its number of
      tokens, gives the loss per token of the whole split).
    sample_field: the data field `sample` produces (its spec says how to show it).
    sharding_rules: ((regex, spec), ...) tensor-parallel rules for
      `config.sharding = "tensor"` (see gen_jax.parallel.state_shardings).
  """
  players: tuple[str, ...]
  init: Callable[..., tuple[PyTree, PyTree]]
  loss: Callable[..., tuple[jax.Array, tuple[PyTree, Metrics]]]
  sample: Callable[..., jax.Array]
  eval_fn: Callable[..., Metrics]
  updates_per_step: Optional[Mapping[str, int]] = None
  encode: Optional[Callable[..., jax.Array]] = None
  decode: Optional[Callable[..., jax.Array]] = None
  eval_units: Mapping[str, str] = dataclasses.field(default_factory=dict)
  eval_weights: Mapping[str, str] = dataclasses.field(default_factory=dict)
  sample_field: str = "x"
  sharding_rules: tuple = ()

  def num_updates(self, player: str) -> int:
    return 1 if self.updates_per_step is None else int(self.updates_per_step.get(player, 1))


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue bit-identically after a restart.

  No PRNG key is stored: every key is derived from the config seed and `step`.
  The data order is also a function of (seed, step), so `step` is the data
  iterator's position.
  """
  step: jax.Array          # i32[], number of completed train steps
  params: PyTree           # {player: pytree}
  opt_state: PyTree        # {player: optax state}
  state: PyTree            # non-gradient variables, family-defined
  ema: Optional[PyTree]    # EMA of params, or None when disabled

  def eval_params(self) -> PyTree:
    """Parameters to sample and evaluate with: the EMA when present."""
    return self.params if self.ema is None else self.ema
