"""Deep belief networks built greedily from RBMs (Hinton, Osindero & Teh 2006).

Model: a stack of binary RBMs 0..L-1, RBM l joining h_l (its visible layer;
h_0 = v) and h_{l+1}, sizes V -> hidden[0] -> ... -> hidden[L-1]. The top
RBM (l = L-1) is an undirected prior over h_{L-1}; below it the RBMs act as
directed sigmoid belief nets p(h_l | h_{l+1}) = sigmoid(bv_l + W_l h_{l+1}),
and recognition q(h_{l+1} | h_l) = sigmoid(bh_l + h_l W_l) is their posterior.

Greedy stacking, one run per layer: a run with hidden=(h_0, ..., h_{L-1})
trains ONLY the top RBM, by the rbm family's CD-k / PCD (`rbm.cd_loss`, the
same config keys), on h_{L-1} drawn upwards from the data through the frozen
lower layers (`top_data` "sample": states, as the bound assumes; "mean":
probabilities). The lower layers come from the previous run through
`config.init_from` (an rbm run's parameters live at the same path
params/model/layer_0); the loss stops their gradients, so an optimizer step
leaves them exactly unchanged (the weight cost applies to the top layer only).

Initialization from the transpose. A layer l >= 1 with as many hidden units as
layer l-1 has visible units is stored as an OFFSET from the transpose of layer
l-1: W_l = W_{l-1}^T + dw, bv_l = bh_{l-1} + dbv, bh_l = bv_{l-1} + dbh, with
the offsets initialized to 0. Because init_from copies the lower layers and
the offsets start at zero, the new top RBM starts exactly as the transpose,
where its marginal over h_{l-1} equals layer l-1's and the variational bound
equals the bound before stacking (Hinton et al. 2006); from there, whatever
raises the top RBM's likelihood of the upward samples raises the bound (CD
only approximates that gradient). Other layers are free RBMs (w ~ N(0,
init_scale^2), biases 0). Either form is read from the parameters themselves
(`layers`), so no config key has to match between stacking runs.

Variational lower bound on log p(v) (nats), Monte Carlo over `samples` upward
passes h_l ~ q(h_l | h_{l-1}):
    log p(v) >= E_q[ sum_{l=0}^{L-2} (log p(h_l | h_{l+1}) + H(q(. | h_l)))
                     - F_top(h_{L-1}) ] - log Z_top,
the entropy terms in closed form given the sample below. `eval_fn` returns
the bound plus log Z_top; the "ais" evaluator subtracts an AIS estimate of
log Z_top (Salakhutdinov & Murray 2008). With L = 1 it is -F(v), the RBM.

Samples (top-down): `config.sample.sweeps` Gibbs sweeps of the top RBM, then
one pass down the directed layers; images are E[v | h_1].

Config (config.model): hidden (tuple), top_data, and the rbm family's CD keys
(method, k, k_final, k_ramp_steps, pcd_chains, weight_cost, init_scale,
init_hidden_bias, negative_visible). Visible units are binary.
"""
import math

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types
from gen_jax.inference import ais
from gen_jax.models import rbm

TOP_DATA = ("sample", "mean")
KEYS = rbm.CD_KEYS + ("hidden", "top_data")


def _layer_names(p: dict) -> list:
  return sorted(p, key=lambda k: int(k.split("_")[1]))


def layers(p: dict) -> list:
  """The effective RBMs [{w, bv, bh}] of params["model"], bottom to top (offsets resolved)."""
  out = []
  for name in _layer_names(p):
    q = p[name]
    if "dw" in q:
      below = out[-1]
      q = {"w": below["w"].T + q["dw"], "bv": below["bh"] + q["dbv"],
           "bh": below["bv"] + q["dbh"]}
    out.append(q)
  return out


def _sample_bits(rng, logits):
  p = jax.nn.sigmoid(logits)
  return (jax.random.uniform(rng, p.shape, p.dtype) < p).astype(p.dtype)


def up(rng, stack: list, v, how: str = "sample"):
  """h_{L-1} from data v f[B, V] through the lower layers: states ("sample") or means."""
  h = v
  for i, layer in enumerate(stack[:-1]):
    logits = ais.hidden_logits(layer, h)
    h = _sample_bits(jax.random.fold_in(rng, i), logits) if how == "sample" else \
        jax.nn.sigmoid(logits)
  return h


def _bernoulli_entropy(logits):
  """sum_j H(Bernoulli(sigmoid(logit_j))) in nats: f[..., H] -> f[...]."""
  p = jax.nn.sigmoid(logits)
  return jnp.sum(jax.nn.softplus(logits) - p * logits, -1)


def _bernoulli_log_prob(logits, x):
  """sum_i log Bernoulli(x_i; sigmoid(logit_i)): f[...]."""
  return jnp.sum(x * logits - jax.nn.softplus(logits), -1)


def upward_terms(rng, stack: list, x):
  """One upward pass h_{l+1} ~ q(. | h_l) from x f[..., V]: (h_{L-1}, lower terms f[...]).

  lower terms = sum_{l=0}^{L-2} log p(h_l | h_{l+1}) + H(q(. | h_l)) (entropies in
  closed form given the sample below), so the bound is E_q[lower - F_top(h_{L-1})] - log Z_top.
  """
  total = jnp.zeros(x.shape[:-1], x.dtype)
  h_prev = x
  for i, layer in enumerate(stack[:-1]):
    logits = ais.hidden_logits(layer, h_prev)
    h = _sample_bits(jax.random.fold_in(rng, i), logits)
    down = layer["bv"] + h @ layer["w"].T
    total = total + _bernoulli_log_prob(down, h_prev) + _bernoulli_entropy(logits)
    h_prev = h
  return h_prev, total


def bound_plus_log_z(rng, stack: list, v, samples: int):
  """Per example: the variational bound on log p(v) plus log Z_top, f[B] (nats).

  Monte Carlo over `samples` upward passes; exact for a one-layer stack (-F(v)).
  """
  if len(stack) == 1:
    return -ais.free_energy(stack[0], v)
  h, lower = upward_terms(rng, stack, jnp.broadcast_to(v, (samples,) + v.shape))
  return jnp.mean(lower - ais.free_energy(stack[-1], h), 0)


def exact_bound_plus_log_z(stack: list, v):
  """The 2-layer bound plus log Z_top with E_q summed exactly over h_1 (2^H_1 states): f[B].

  For tests and small models (H_1 <= 20).
  """
  if len(stack) != 2:
    raise errors.ConfigError("exact_bound_plus_log_z enumerates h_1 of a 2-layer DBN")
  bottom, top = stack
  n = bottom["w"].shape[1]
  logits = ais.hidden_logits(bottom, v)                     # [B, H1]
  codes = jnp.arange(1 << n, dtype=jnp.int32)
  h = ((codes[:, None] >> jnp.arange(n)) & 1).astype(v.dtype)  # [S, H1]
  log_q = h @ jax.nn.log_sigmoid(logits).T + (1 - h) @ jax.nn.log_sigmoid(-logits).T  # [S, B]
  down = bottom["bv"] + h @ bottom["w"].T                   # [S, V]
  log_p = v @ down.T - jnp.sum(jax.nn.softplus(down), -1)[None]   # [B, S]
  inner = log_p.T - ais.free_energy(top, h)[:, None] - log_q      # [S, B]
  return jnp.sum(jnp.exp(log_q) * inner, 0)


def init_layers(rng, x, sizes: tuple, s: dict) -> dict:
  """params["model"]: layer_0 from data x f[B, V]; the rest transpose offsets or free RBMs."""
  dtype = types.real_dtype()
  p = {"layer_0": rbm.init_layer(jax.random.fold_in(rng, 0), x, sizes[0], s, "bernoulli")}
  below_visible = x.shape[1]
  for i in range(1, len(sizes)):
    n_in, n_out = sizes[i - 1], sizes[i]
    if n_out == below_visible:
      p[f"layer_{i}"] = {"dw": jnp.zeros((n_in, n_out), dtype),
                         "dbv": jnp.zeros((n_in,), dtype), "dbh": jnp.zeros((n_out,), dtype)}
    else:
      w = s["init_scale"] * jax.random.normal(jax.random.fold_in(rng, i), (n_in, n_out), dtype)
      p[f"layer_{i}"] = {"w": w, "bv": jnp.zeros((n_in,), dtype),
                         "bh": jnp.full((n_out,), s["init_hidden_bias"], dtype)}
    below_visible = n_in
  return p


def _frozen_below(p: dict) -> dict:
  """params["model"] with every layer but the top under stop_gradient."""
  names = _layer_names(p)
  return {n: (p[n] if n == names[-1] else jax.lax.stop_gradient(p[n])) for n in names}


# ---------------------------------------------------------------------------------------------
# What the "ais" evaluator needs (the rbm family has the same functions).

def top_rbm(params) -> dict:
  return layers(params["model"])[-1]


def top_inputs(params, x):
  """Mean-field activities of the top RBM's visible layer given data x: f[B, H_{L-2}]."""
  return up(None, layers(params["model"]), x.reshape(x.shape[0], -1), how="mean")


def raise_inputs(params, rng, x):
  """(h_{L-1} f[B, V_top], lower terms f[B]) of one upward sample per example (`upward_terms`):
  the bound's estimate is lower + log p^_top(h_{L-1}) for any estimate of the top's log p."""
  return upward_terms(rng, layers(params["model"]), x.reshape(x.shape[0], -1))


def visible_kind(config) -> str:
  del config
  return "bernoulli"


# ---------------------------------------------------------------------------------------------

def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """The dbn family for binary images (or binary points) of `spec`."""
  field = rbm.data_field(spec)
  shape = tuple(spec[field].shape)
  s = rbm.settings(config.model, KEYS)
  sizes = tuple(int(h) for h in s.get("hidden", ()))
  if not sizes or min(sizes) < 1:
    raise errors.ConfigError(f"family 'dbn' needs model.hidden, a tuple of layer sizes >= 1 "
                             f"(got {s.get('hidden')!r})")
  top_data = s.get("top_data", "sample")
  if top_data not in TOP_DATA:
    raise errors.ConfigError(errors.choices("model.top_data", top_data, TOP_DATA))
  rbm.check_data("bernoulli", config.data.variant)
  sweeps = int(config.sample.get("sweeps", 1000))
  batch_size = int(config.data.batch_size) or 1

  def flat(batch):
    x = batch[field]
    return x.reshape(x.shape[0], -1).astype(types.real_dtype())

  def init(rng, batch):
    r_p, r_c = jax.random.split(rng)
    x = flat(batch)
    p = init_layers(r_p, x, sizes, s)
    stack = layers(p)
    state = rbm.init_state(r_c, stack[-1], batch_size, s, "bernoulli")
    return {"model": p}, state

  def loss(player, params, state, batch, rng):
    del player
    r_up, r_cd = jax.random.split(rng)
    stack = layers(_frozen_below(params["model"]))
    h = up(r_up, stack, flat(batch), top_data)
    return rbm.cd_loss(stack[-1], state, jax.lax.stop_gradient(h), r_cd, s, "bernoulli")

  def eval_fn(params, state, batch, rng, samples: int = 10, **kw):
    del state, kw
    return {"bound_plus_log_z": bound_plus_log_z(rng, layers(params["model"]), flat(batch),
                                                 samples)}

  def sample(params, state, rng, n):
    del state
    stack = layers(params["model"])
    r_top, r_down = jax.random.split(rng)
    top = stack[-1]
    h0 = ais.sample_zero_weight(jax.random.fold_in(r_top, 0), top, n)
    h, mean = ais.gibbs_chain(jax.random.fold_in(r_top, 1), top, h0, sweeps)
    if len(stack) == 1:
      h = mean
    for i, layer in reversed(list(enumerate(stack[:-1]))):
      logits = layer["bv"] + h @ layer["w"].T
      h = _sample_bits(jax.random.fold_in(r_down, i), logits) if i else jax.nn.sigmoid(logits)
    return h.reshape((n,) + shape).astype(jnp.float32)

  d = math.prod(shape)
  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      sample_field=field, sharding_rules=rbm.SHARDING_RULES,
      eval_units={"bound_plus_log_z": (
          f"nats, variational lower bound on log p(v) of the {d} visible units PLUS log Z of the "
          f"top RBM (Monte Carlo over q; not a likelihood: the 'ais' evaluator subtracts an AIS "
          f"estimate of log Z_top)")})
