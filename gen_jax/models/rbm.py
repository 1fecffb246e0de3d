"""Restricted Boltzmann machines trained by contrastive divergence (CD-k) or persistent CD.

Model (`gen_jax.inference.ais` has the energies): binary hidden units h in
{0, 1}^H and visible units that are binary ("bernoulli", for binarized images)
or Gaussian with per-pixel standard deviation s ("gaussian", for grayscale or
continuous data). log p(v) = -F(v) - log Z with the free energy F in closed
form; Z is intractable for 500 hidden units and is estimated by AIS in the
"ais" evaluator (`gen_jax.evaluators.ais_likelihood`), which labels every
likelihood it reports as an AIS estimate with its error bar.

Parameters (params["model"]["layer_0"], the path a DBN's first layer has, so a
`dbn` run can `init_from` an `rbm` run): w f[V, H] ~ N(0, init_scale^2), bv
f[V] (initialized to the log-odds of the init batch's pixel means, Laplace-
smoothed, as Hinton's practical guide recommends; the mean for Gaussian
units), bh f[H] = init_hidden_bias, and log_sigma f[V] (Gaussian units; = 0,
kept fixed unless learn_sigma).

Training ("sgd" trainer). The loss is the CD/PCD SURROGATE
    mean_i F(v_i) - mean_j F(stopgrad(v~_j)) + weight_cost/2 * |W|^2,
whose gradient is the CD update (positive statistics from the data,
negative from Gibbs samples v~; the hidden statistics are the exact
conditional expectations). It is not a likelihood and is never reported as
one; momentum comes from the optimizer config (optax sgd momentum), the L2
weight cost on W is `model.weight_cost` (the papers' 2e-4).
  method "cd":  v~ = k Gibbs sweeps from the data (CD-k). The number of sweeps
                rises linearly from `k` to `k_final` over `k_ramp_steps` updates
                (Salakhutdinov & Murray 2008 raise CD from 1 to 25 steps
                "gradually"); k_final = 0 keeps k fixed.
  method "pcd": v~ = k sweeps from persistent chains (Tieleman 2008) held in
                the non-gradient state["chains"] f[C, V] (C = pcd_chains, or
                the batch size), saved in every checkpoint, so a resumed run
                continues the same chains bit-identically. The family's
                sharding rule splits the chains over the "data" mesh axis under
                config.sharding = "tensor" (replicated otherwise).
  negative_visible: "sample" (the v~ states) or "mean" (E[v | h] of the last
                sweep, Hinton's code), used in the negative statistics.
state["updates"] counts updates (it drives the k schedule and is checkpointed).
Logged: loss (the surrogate), k, free_energy_gap (mean F(data) - mean F(v~)),
recon_error (CD: mean squared error of the first sweep's mean reconstruction
per pixel; a diagnostic only).

Evaluation (`eval_fn`): per example, neg_free_energy = -F(v) = log p(v) + log Z
(nats, UNNORMALIZED), recon_error. Samples: `config.sample.sweeps` (default
1000) Gibbs sweeps from random states; images are E[v | h] of the last sweep.

Config (config.model): visible, hidden, method, k, k_final, k_ramp_steps,
pcd_chains, weight_cost, init_scale, init_hidden_bias, negative_visible,
learn_sigma.
"""
import math

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types
from gen_jax.data import spec as spec_lib
from gen_jax.inference import ais

METHODS = ("cd", "pcd")
NEGATIVE = ("sample", "mean")
CD_KEYS = ("method", "k", "k_final", "k_ramp_steps", "pcd_chains", "weight_cost", "init_scale",
           "init_hidden_bias", "negative_visible")
KEYS = CD_KEYS + ("visible", "hidden", "learn_sigma")
LAYER = "layer_0"
SHARDING_RULES = ((r"^state/chains$", ("data", None)),)
DEFAULTS = dict(visible="bernoulli", method="cd", k=1, k_final=0, k_ramp_steps=0, pcd_chains=0,
                weight_cost=0.0, init_scale=0.01, init_hidden_bias=0.0,
                negative_visible="sample", learn_sigma=False)


def data_field(spec: dict) -> str:
  name = spec_lib.of_field(spec, "image") or spec_lib.of_field(spec, "points")
  if name is None:
    raise errors.ConfigError(f"RBMs need an image or points field; the data has "
                             f"{spec_lib.describe(spec)}")
  return name


def settings(m: ml_collections.ConfigDict, keys=KEYS) -> dict:
  """config.model with defaults filled in, checked: unknown keys and bad values are errors."""
  unknown = sorted(set(m.keys()) - set(keys))
  if unknown:
    raise errors.ConfigError(f"unknown model key(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(keys)}")
  s = {**{k: v for k, v in DEFAULTS.items() if k in keys}, **m.to_dict()}
  for key, valid in (("method", METHODS), ("negative_visible", NEGATIVE),
                     ("visible", ais.VISIBLE)):
    if key in s and s[key] not in valid:
      raise errors.ConfigError(errors.choices(f"model.{key}", s[key], valid))
  if s["k"] < 1 or (s["k_final"] and s["k_final"] < s["k"]):
    raise errors.ConfigError(f"model.k must be >= 1 and k_final 0 or >= k (got k={s['k']}, "
                             f"k_final={s['k_final']})")
  if s["k_final"] and s["k_ramp_steps"] < 1:
    raise errors.ConfigError("model.k_final needs model.k_ramp_steps >= 1 (the updates over "
                             "which k rises)")
  if s["method"] == "pcd" and s["negative_visible"] == "mean":
    raise errors.ConfigError("PCD chains must hold samples: use negative_visible='sample' "
                             "with method 'pcd'")
  return s


def check_data(visible: str, variant: str) -> None:
  binary = variant.startswith("binarized")
  if visible == "bernoulli" and not binary:
    raise errors.ConfigError(f"visible 'bernoulli' needs binary data; data.variant is "
                             f"{variant!r} (use binarized_fixed, binarized_static or "
                             f"binarized_dynamic, or visible 'gaussian')")
  if visible == "gaussian" and binary:
    raise errors.ConfigError(f"visible 'gaussian' models real values; data.variant is "
                             f"{variant!r} (use grayscale or continuous, or visible 'bernoulli')")


# ---------------------------------------------------------------------------------------------
# CD / PCD, shared with the DBN family (which trains its top layer with it).

def num_sweeps(updates, s: dict):
  """CD steps at update `updates` (i32[]): k, rising linearly to k_final over k_ramp_steps."""
  if not s["k_final"] or s["k_final"] == s["k"]:
    return s["k"]
  frac = jnp.minimum(updates.astype(jnp.float32) / s["k_ramp_steps"], 1.0)
  return (s["k"] + jnp.round(frac * (s["k_final"] - s["k"]))).astype(jnp.int32)


def init_layer(rng, x, num_hidden: int, s: dict, visible: str) -> dict:
  """One RBM's parameters f[...] in real_dtype, visible biases from data x f[B, V]."""
  dtype = types.real_dtype()
  x = x.astype(dtype)
  w = s["init_scale"] * jax.random.normal(rng, (x.shape[1], num_hidden), dtype)
  bh = jnp.full((num_hidden,), s["init_hidden_bias"], dtype)
  if visible == "gaussian":
    return {"w": w, "bv": jnp.mean(x, 0), "bh": bh, "log_sigma": jnp.zeros(x.shape[1:], dtype)}
  p = (jnp.sum(x, 0) + 1.0) / (x.shape[0] + 2.0)
  return {"w": w, "bv": jnp.log(p) - jnp.log1p(-p), "bh": bh}


def init_state(rng, layer: dict, batch_size: int, s: dict, visible: str) -> dict:
  """{"updates": i32[]} and, for PCD, chains f[C, V] drawn from the visible biases alone."""
  state = {"updates": jnp.zeros((), jnp.int32)}
  if s["method"] == "pcd":
    c = s["pcd_chains"] or batch_size
    state["chains"] = ais.sample_zero_weight(rng, layer, c, visible)
  return state


def cd_loss(layer: dict, state: dict, v, rng, s: dict, visible: str):
  """The CD/PCD surrogate for data v f[B, V]: (scalar, (new state, metrics)).

  Gradients flow only through the two free energies (the Gibbs chain sees
  stop_gradient parameters), so d loss / d params = -(CD update).
  """
  fixed = jax.lax.stop_gradient(layer)
  if visible == "gaussian" and not s.get("learn_sigma", False):
    layer = {**layer, "log_sigma": fixed["log_sigma"]}
  k = num_sweeps(state["updates"], s)
  start = state["chains"] if s["method"] == "pcd" else v
  v_neg, v_mean, recon = ais.gibbs_k(rng, fixed, start, k, visible)
  neg = jax.lax.stop_gradient(v_mean if s["negative_visible"] == "mean" else v_neg)
  f_data = ais.free_energy(layer, v, visible)
  f_neg = ais.free_energy(layer, neg, visible)
  surrogate = jnp.mean(f_data) - jnp.mean(f_neg)
  penalty = 0.5 * s["weight_cost"] * jnp.sum(layer["w"] ** 2)
  new_state = {**state, "updates": state["updates"] + 1}
  metrics = {"k": jnp.asarray(k, jnp.float32),
             "free_energy_gap": jax.lax.stop_gradient(surrogate)}
  if s["method"] == "pcd":
    new_state["chains"] = jax.lax.stop_gradient(v_neg)
  else:
    metrics["recon_error"] = jnp.mean((v - recon) ** 2)
  return surrogate + penalty, (new_state, metrics)


def sample_images(rng, layer: dict, n: int, sweeps: int, visible: str, shape: tuple,
                  clip: bool = True):
  """n samples f32[n, *shape]: `sweeps` Gibbs sweeps from the zero-weight model's samples,
  shown as E[v | h] of the last sweep (clipped to [0, 1] for images of Gaussian units)."""
  r0, r1 = jax.random.split(rng)
  v0 = ais.sample_zero_weight(r0, layer, n, visible)
  _, mean = ais.gibbs_chain(r1, layer, v0, sweeps, visible)
  if visible == "gaussian" and clip:
    mean = jnp.clip(mean, 0.0, 1.0)
  return mean.reshape((n,) + tuple(shape)).astype(jnp.float32)


# ---------------------------------------------------------------------------------------------
# What the "ais" evaluator needs from an rbm run (the dbn family has the same functions).

def top_rbm(params) -> dict:
  """The RBM whose partition function the likelihood needs: f[...] arrays."""
  return params["model"][LAYER]


def top_inputs(params, x):
  """Mean activities of the top RBM's visible units given data x f[B, ...]: f[B, V]."""
  del params
  return x.reshape(x.shape[0], -1)


def raise_inputs(params, rng, x):
  """(the top RBM's visible states f[B, V], an offset f[B] added to their log p): (x, 0)."""
  del params, rng
  x = x.reshape(x.shape[0], -1)
  return x, jnp.zeros(x.shape[:1], x.dtype)


def visible_kind(config) -> str:
  return config.model.get("visible", "bernoulli")


# ---------------------------------------------------------------------------------------------

def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """The rbm family for examples of the image or points field of `spec`."""
  field = data_field(spec)
  shape = tuple(spec[field].shape)
  s = settings(config.model)
  if "hidden" not in config.model or int(config.model.hidden) < 1:
    raise errors.ConfigError("family 'rbm' needs model.hidden >= 1 (the number of hidden units)")
  visible, num_hidden = s["visible"], int(s["hidden"])
  check_data(visible, config.data.variant)
  sweeps = int(config.sample.get("sweeps", 1000))
  batch_size = int(config.data.batch_size) or 1

  def flat(batch):
    x = batch[field]
    return x.reshape(x.shape[0], -1).astype(types.real_dtype())

  def init(rng, batch):
    r_w, r_c = jax.random.split(rng)
    layer = init_layer(r_w, flat(batch), num_hidden, s, visible)
    return {"model": {LAYER: layer}}, init_state(r_c, layer, batch_size, s, visible)

  def loss(player, params, state, batch, rng):
    del player
    return cd_loss(params["model"][LAYER], state, flat(batch), rng, s, visible)

  def eval_fn(params, state, batch, rng, **kw):
    del state, kw
    layer, v = params["model"][LAYER], flat(batch)
    recon = ais.visible_mean(layer, ais.sample_hidden(rng, layer, v, visible), visible)
    return {"neg_free_energy": -ais.free_energy(layer, v, visible),
            "recon_error": jnp.mean((v - recon) ** 2, -1)}

  def sample(params, state, rng, n):
    del state
    return sample_images(rng, params["model"][LAYER], n, sweeps, visible, shape,
                         clip=spec[field].modality == "image")

  d = math.prod(shape)
  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      sample_field=field, sharding_rules=SHARDING_RULES,
      eval_units={
          "neg_free_energy": f"nats, -F(v) = log p(v) + log Z: the UNNORMALIZED log-probability "
                             f"of the {d} visible units (not a likelihood; the 'ais' evaluator "
                             f"subtracts an AIS estimate of log Z)",
          "recon_error": "mean squared error per unit of a one-sample reconstruction E[v | h], "
                         "h ~ p(h | v) (a diagnostic, not a likelihood)",
      })
