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
    em: closed-form expectation-maximization (`EM`) for the "em" trainer; a
      family that has it is also trainable by "sgd" on `loss` (the negative
      mean log-likelihood), so both routes fit the same model.
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
  em: Optional["EM"] = None

  def num_updates(self, player: str) -> int:
    return 1 if self.updates_per_step is None else int(self.updates_per_step.get(player, 1))


@dataclasses.dataclass(frozen=True)
class EM:
  """Expectation-maximization in closed form, for the "em" trainer.

  Attributes:
    e_step: `e_step(params, state, batch, weights) -> stats`: a pytree of SUMS
      over the batch's examples, example i's contribution multiplied by
      `weights[i]` (f32[B]; 0 marks padding). It must hold "loglik" (f[] =
      sum_i w_i log p(x_i | params), nats) and "count" (f[] = sum_i w_i).
      Because every entry is a sum, the statistics of a batch sharded over
      devices and hosts are the sums XLA reduces across them: one E-step over
      the global batch is one E-step over the union of the shards.
      A MAP family (pseudo-counts, Dirichlet priors) also returns "log_prior"
      (f[], log p(params), once, not per example): EM then makes loglik +
      log_prior monotone, and that sum is what the trainer checks.
      (Under jit the E-step is written on the global batch; XLA runs it per
      shard and reduces the sums, so a per-parameter term like the log prior
      is counted once.)
    m_step: `m_step(params, state, stats) -> (params, state)`: the maximizer
      given the whole training split's statistics, with the family's priors
      and floors (e.g. `reg_covar`, pseudo-counts), in the same parameter
      space as `init` (so the SGD route can train the same params).
  """
  e_step: Callable[..., PyTree]
  m_step: Callable[..., tuple[PyTree, PyTree]]


@dataclasses.dataclass(frozen=True)
class Trainer:
  """What a trainer module's `make(family, config)` returns.

  Attributes:
    init: `init(rng, batch) -> TrainState`.
    step: `step(ts, batch, rng) -> (ts, metrics)`, pure: `rng` is already
      specific to this step, `batch` is in model space and `metrics` are
      scalar global means.
    monitor: optional `monitor(first_step, metrics) -> (warnings, stop_step)`,
      called by the loop on the host with the metrics {name: np.ndarray[n]} of
      steps first_step+1 .. first_step+n whenever it checks them; `warnings`
      are printed and recorded, `stop_step` (or None) is a step at which the
      run is complete (e.g. EM converged) and the loop stops and saves there.
  """
  init: Callable[..., "TrainState"]
  step: Callable[..., tuple["TrainState", dict]]
  monitor: Optional[Callable[..., tuple[list, Optional[int]]]] = None


def real_dtype():
  """float64 when `jax_enable_x64` is on (config.x64), else float32: families cast to it."""
  return jax.numpy.zeros((), float).dtype


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
