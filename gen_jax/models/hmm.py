"""Hidden Markov models with categorical or diagonal-Gaussian emissions: EM and SGD routes.

Model: z_0 ~ Cat(pi), z_{t+1} | z_t ~ Cat(A[z_t]), x_t | z_t ~ Cat(B[z_t])
(tokens) or N(mu[z_t], diag var[z_t]) (points), for the valid steps of each
sequence (`length` field; padding steps are ignored everywhere). Inference is
`gen_jax.inference.forward_backward`; all log-probabilities are nats.

Parameters (params["model"], in types.real_dtype(): float64 under config.x64):
  start_logits f[K], trans_logits f[K, K], and emit_logits f[K, V] or
  means f[K, D] and log_vars f[K, D]. Probabilities are softmaxes of the
  logits, so any gradient step keeps them valid; a logit of -inf is a
  STRUCTURAL zero (topology "left_right": start in state 0, moves i -> i or
  i -> i + 1), which both routes keep at exactly zero (EM's counts there are
  exactly 0 and its pseudo-counts go only to non-zero entries; the gradient
  there is exactly 0).

Routes, on the same log-likelihood:
  em:  Baum-Welch. `e_step` sums (weighted) expected start, transition and
       emission counts (for Gaussians the weighted sums of x and x^2), the
       log-likelihood and the example count; `m_step` is the closed-form
       maximizer. Floors keep every state usable: `pseudo_count` (Dirichlet
       prior alpha = 1 + pseudo_count on start and transition rows),
       `emission_pseudo_count` (the same on categorical emission rows; both
       priors are reported as "log_prior", so EM is then MAP and monotone in
       loglik + log prior) and `min_var` (variances).
       A row whose counts and pseudo-counts are all zero keeps its old value
       (never 0/0 = NaN: hmmlearn#186), an allowed probability that falls to
       zero is stored as the smallest normal float (so the logit stays
       finite and the entry is not frozen as structural), and a Gaussian state
       with no expected frames keeps its mean and variance.
  sgd: `loss` = -mean log p(x) per sequence of the minibatch, by the
       forward algorithm (autodiff through its lax.scan).

Config (config.model): num_states, emission ("categorical" | "gaussian"),
topology ("ergodic" | "left_right"), pseudo_count, emission_pseudo_count,
min_var, init_spread (how far from uniform the random start is).
Init (seeded, k-means-free): start, transition and categorical emission
logits ~ N(0, init_spread^2) (a logistic-normal draw; 0 = uniform, a saddle
point of the likelihood that EM does not leave for symmetric states, so use
e.g. 1.0); Gaussian means = K valid frames of the init batch by k-means++
seeding (no k-means iterations), variances = the batch's per-dimension
variance (>= min_var).
"""
import math

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types
from gen_jax.data import spec as spec_lib
from gen_jax.inference import forward_backward as fb

EMISSIONS = ("categorical", "gaussian")
TOPOLOGIES = ("ergodic", "left_right")
KEYS = ("num_states", "emission", "topology", "pseudo_count", "emission_pseudo_count",
        "min_var", "init_spread")
OBS = "obs"    # the observation field


# ---------------------------------------------------------------------------------------------
# Functions of the parameters (also used by evaluators and tests).

def emission_kind(p: dict) -> str:
  return "categorical" if "emit_logits" in p else "gaussian"


def log_params(p: dict) -> tuple[jax.Array, jax.Array]:
  """(log_init f[K], log_trans f[K, K]) from params["model"]."""
  return jax.nn.log_softmax(p["start_logits"]), jax.nn.log_softmax(p["trans_logits"], axis=-1)


def emission_log_lik(p: dict, obs: jax.Array) -> jax.Array:
  """log p(x_t | z_t = k): obs i32[..., T] or f[..., T, D] -> f[..., T, K] (nats)."""
  if emission_kind(p) == "categorical":
    log_b = jax.nn.log_softmax(p["emit_logits"], axis=-1)             # [K, V]
    return jnp.moveaxis(jnp.take(log_b, obs, axis=1), 0, -1)
  x = obs.astype(p["means"].dtype)[..., None, :]                      # [..., T, 1, D]
  var = jnp.exp(p["log_vars"])
  return -0.5 * jnp.sum((x - p["means"]) ** 2 / var + p["log_vars"] + math.log(2 * math.pi),
                        axis=-1)


def _lengths(obs: jax.Array, length) -> jax.Array:
  if length is None:
    return jnp.full(obs.shape[:1], obs.shape[1], jnp.int32)
  return length.astype(jnp.int32)


def log_px(p: dict, obs: jax.Array, length=None) -> jax.Array:
  """Exact log p(x) per sequence, f[B] nats: obs [B, T] or [B, T, D], length i32[B]."""
  log_init, log_trans = log_params(p)
  run = jax.vmap(lambda ll, n: fb.hmm_filter(log_init, log_trans, ll, n).log_normalizer)
  return run(emission_log_lik(p, obs), _lengths(obs, length))


def viterbi(p: dict, obs: jax.Array, length=None) -> tuple[jax.Array, jax.Array]:
  """Most probable state paths i32[B, T] and their log joints f[B] (nats)."""
  log_init, log_trans = log_params(p)
  run = jax.vmap(lambda ll, n: fb.hmm_viterbi(log_init, log_trans, ll, n))
  return run(emission_log_lik(p, obs), _lengths(obs, length))


def posterior(p: dict, obs: jax.Array, length=None) -> fb.Posterior:
  """Smoothed marginals f[B, T, K] (0 beyond each length) etc., batched `fb.hmm_smoother`."""
  log_init, log_trans = log_params(p)
  run = jax.vmap(lambda ll, n: fb.hmm_smoother(log_init, log_trans, ll, n))
  return run(emission_log_lik(p, obs), _lengths(obs, length))


def probabilities(p: dict) -> dict:
  """The parameters in probability space: start [K], trans [K, K], emission [K, V] or
  means, vars [K, D]."""
  log_init, log_trans = log_params(p)
  out = {"start": jnp.exp(log_init), "trans": jnp.exp(log_trans)}
  if emission_kind(p) == "categorical":
    out["emission"] = jax.nn.softmax(p["emit_logits"], axis=-1)
  else:
    out.update(means=p["means"], vars=jnp.exp(p["log_vars"]))
  return out


def sample_paths(p: dict, rng: jax.Array, n: int, t: int, dim: int = 0):
  """(states i32[n, t], obs i32[n, t] or f[n, t, dim]) from the model, one lax.scan over t."""
  log_init, log_trans = log_params(p)
  r0, r_steps = jax.random.split(rng)
  z0 = jax.random.categorical(r0, log_init, shape=(n,))

  def emit(rng, z):
    if emission_kind(p) == "categorical":
      return jax.random.categorical(rng, p["emit_logits"][z], axis=-1).astype(jnp.int32)
    eps = jax.random.normal(rng, (n, dim), p["means"].dtype)
    return p["means"][z] + jnp.exp(0.5 * p["log_vars"][z]) * eps

  def step(z, rng):
    r_emit, r_next = jax.random.split(rng)
    x = emit(r_emit, z)
    return jax.random.categorical(r_next, log_trans[z], axis=-1), (z, x)

  _, (zs, xs) = jax.lax.scan(step, z0, jax.random.split(r_steps, t))
  return jnp.swapaxes(zs, 0, 1).astype(jnp.int32), jnp.swapaxes(xs, 0, 1)


# ---------------------------------------------------------------------------------------------
# EM: expected sufficient statistics and the closed-form M-step.

def e_step_stats(p: dict, obs: jax.Array, length, weights: jax.Array) -> dict:
  """Weighted sums over sequences of the expected counts under `p` (see module docstring).

  Returns {"loglik": f[], "count": f[], "steps": f[] (weighted valid steps),
  "start": f[K], "trans": f[K, K]} and "emit": f[K, V] or "w": f[K],
  "x": f[K, D], "xx": f[K, D]. Every entry is a sum over the batch.
  """
  post = posterior(p, obs, length)
  w = weights.astype(post.smoothed.dtype)
  gamma = post.smoothed * w[:, None, None]                             # [B, T, K]
  stats = {"loglik": jnp.sum(w * post.log_normalizer), "count": jnp.sum(w),
           "steps": jnp.sum(gamma),
           "start": jnp.sum(gamma[:, 0], axis=0),
           "trans": jnp.einsum("b,bij->ij", w, post.trans_counts)}
  if emission_kind(p) == "categorical":
    onehot = jax.nn.one_hot(obs, p["emit_logits"].shape[-1], dtype=gamma.dtype)
    stats["emit"] = jnp.einsum("btk,btv->kv", gamma, onehot)
  else:
    x = obs.astype(gamma.dtype)
    stats.update(w=jnp.sum(gamma, axis=(0, 1)), x=jnp.einsum("btk,btd->kd", gamma, x),
                 xx=jnp.einsum("btk,btd->kd", gamma, x * x))
  return stats


def _rows(counts: jax.Array, old_logits: jax.Array, pseudo: float) -> jax.Array:
  """Closed-form Dirichlet-MAP rows as logits: structural zeros (-inf) stay -inf, a row with
  nothing to normalise keeps its old logits, allowed entries are floored at the tiniest
  normal float."""
  allowed = jnp.isfinite(old_logits)
  c = jnp.where(allowed, counts + pseudo, 0.0)
  total = jnp.sum(c, axis=-1, keepdims=True)
  probs = c / jnp.where(total > 0, total, 1.0)
  tiny = jnp.finfo(probs.dtype).tiny
  new = jnp.where(allowed, jnp.log(jnp.maximum(probs, tiny)), -jnp.inf)
  return jnp.where(total > 0, new, old_logits)


def m_step_params(p: dict, stats: dict, pseudo_count: float, emission_pseudo_count: float,
                  min_var: float) -> dict:
  """The maximizer of the expected complete-data log-likelihood (+ log prior)."""
  out = {"start_logits": _rows(stats["start"], p["start_logits"], pseudo_count),
         "trans_logits": _rows(stats["trans"], p["trans_logits"], pseudo_count)}
  if emission_kind(p) == "categorical":
    out["emit_logits"] = _rows(stats["emit"], p["emit_logits"], emission_pseudo_count)
    return out
  w = stats["w"][:, None]
  used = w > 1e-8                          # expected frames; an unused state keeps its values
  safe_w = jnp.where(used, w, 1.0)
  mean = stats["x"] / safe_w
  var = jnp.maximum(stats["xx"] / safe_w - mean * mean, min_var)
  out["means"] = jnp.where(used, mean, p["means"])
  out["log_vars"] = jnp.where(used, jnp.log(var), p["log_vars"])
  return out


def log_prior(p: dict, pseudo_count: float, emission_pseudo_count: float = 0.0) -> jax.Array:
  """The Dirichlet log prior (up to a constant) that the pseudo-counts stand for: f[] =
  sum pseudo_count * log prob over the non-structural start and transition entries, plus
  emission_pseudo_count * log prob over the categorical emission entries."""
  terms = [(pseudo_count, logp) for logp in log_params(p)]
  if emission_kind(p) == "categorical":
    terms.append((emission_pseudo_count, jax.nn.log_softmax(p["emit_logits"], axis=-1)))
  total = jnp.zeros((), p["start_logits"].dtype)
  for weight, logp in terms:
    if weight:
      total = total + jnp.sum(jnp.where(jnp.isfinite(logp), weight * logp, 0.0))
  return total


def _seed_means(rng: jax.Array, x: jax.Array, valid: jax.Array, k: int) -> jax.Array:
  """K frames of x f[M, D] (valid: bool[M]) by k-means++ seeding (Arthur & Vassilvitskii
  2007), without k-means: the first uniformly, each next with probability proportional to
  its squared distance from the nearest one chosen. f[K, D]."""
  keys = jax.random.split(rng, k)
  uniform = jnp.where(valid, 0.0, -jnp.inf)
  first = x[jax.random.categorical(keys[0], uniform)]

  def pick(d2, key):
    ok = valid & (d2 > 0)
    logits = jnp.where(ok, jnp.log(jnp.where(ok, d2, 1.0)), -jnp.inf)
    mean = x[jax.random.categorical(key, jnp.where(ok.any(), logits, uniform))]
    return jnp.minimum(d2, jnp.sum((x - mean) ** 2, axis=-1)), mean

  _, rest = jax.lax.scan(pick, jnp.sum((x - first) ** 2, axis=-1), keys[1:])
  return jnp.concatenate([first[None], rest])


# ---------------------------------------------------------------------------------------------

def _check(m: ml_collections.ConfigDict, spec: dict) -> None:
  missing = [k for k in KEYS if k not in m]
  if missing:
    raise errors.ConfigError(f"config.model for family 'hmm' lacks {', '.join(missing)}")
  for key, valid in (("emission", EMISSIONS), ("topology", TOPOLOGIES)):
    if m[key] not in valid:
      raise errors.ConfigError(errors.choices(f"model.{key}", m[key], valid))
  if not isinstance(m.num_states, int) or m.num_states < 1:
    raise errors.ConfigError(f"model.num_states must be an integer >= 1 (got {m.num_states!r})")
  for key in ("pseudo_count", "emission_pseudo_count", "min_var", "init_spread"):
    if not m[key] >= 0:
      raise errors.ConfigError(f"model.{key} must be >= 0 (got {m[key]!r})")
  if m.min_var <= 0 and m.emission == "gaussian":
    raise errors.ConfigError(f"model.min_var must be > 0 (got {m.min_var}): it floors the "
                             f"variances against collapse onto one point")
  if OBS not in spec:
    raise errors.ConfigError(f"family 'hmm' needs a data field {OBS!r}; the data have "
                             f"{spec_lib.describe(spec)}")
  f = spec[OBS]
  want = {"categorical": ("tokens", 1), "gaussian": ("points", 2)}[m.emission]
  if f.modality != want[0] or len(f.shape) != want[1]:
    raise errors.ConfigError(
        f"emission {m.emission!r} needs {OBS!r} as {want[0]} of rank {want[1]} per sequence; "
        f"got {f.dtype}{list(f.shape)} {f.modality}")
  if m.emission == "categorical" and not f.cardinality:
    raise errors.ConfigError(f"field {OBS!r} has no cardinality (vocabulary size)")


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """The HMM family from `config.model` for sequences `spec["obs"]`."""
  m = config.model
  _check(m, spec)
  k, kind = int(m.num_states), m.emission
  pc, epc, min_var = float(m.pseudo_count), float(m.emission_pseudo_count), float(m.min_var)
  length_field = spec_lib.of_field(spec, "length")
  obs_field = spec[OBS]
  t_max = obs_field.shape[0]
  dim = obs_field.shape[1] if kind == "gaussian" else 0
  spread = float(m.init_spread)

  def lengths(batch):
    return None if length_field is None else batch[length_field]

  def structure():
    """Allowed entries (bool) of start [K] and transitions [K, K]."""
    if m.topology == "ergodic":
      return jnp.ones((k,), bool), jnp.ones((k, k), bool)
    i = jnp.arange(k)
    return i == 0, (i[None, :] == i[:, None]) | (i[None, :] == i[:, None] + 1)

  def init(rng, batch):
    dtype = types.real_dtype()
    r_start, r_trans, r_emit = jax.random.split(rng, 3)
    allowed_s, allowed_t = structure()

    def random_logits(r, shape, allowed):
      # Normalised log-probabilities (a logistic-normal draw); -inf marks structural zeros.
      z = jnp.where(allowed, spread * jax.random.normal(r, shape, dtype), -jnp.inf)
      return jax.nn.log_softmax(z, axis=-1)

    p = {"start_logits": random_logits(r_start, (k,), allowed_s),
         "trans_logits": random_logits(r_trans, (k, k), allowed_t)}
    if kind == "categorical":
      p["emit_logits"] = random_logits(r_emit, (k, obs_field.cardinality), True)
    else:
      x = batch[OBS].astype(dtype)                                        # [B, T, D]
      n = lengths(batch)
      valid = (jnp.ones(x.shape[:2], bool) if n is None
               else jnp.arange(x.shape[1])[None, :] < n[:, None]).reshape(-1)
      flat = x.reshape(-1, x.shape[-1])
      p["means"] = _seed_means(r_emit, flat, valid, k)
      wv = valid.astype(dtype)[:, None]
      cnt = jnp.maximum(wv.sum(), 1.0)
      mu = (flat * wv).sum(0) / cnt
      var = ((flat - mu) ** 2 * wv).sum(0) / cnt
      p["log_vars"] = jnp.broadcast_to(jnp.log(jnp.maximum(var, min_var)), (k, dim))
    return {"model": p}, {}

  def loss(player, params, state, batch, rng):
    del player, rng
    lp = log_px(params["model"], batch[OBS], lengths(batch))
    n = _lengths(batch[OBS], lengths(batch)).astype(lp.dtype)
    metrics = {"log_px": lp.mean(), "nll_per_step": -lp.sum() / jnp.maximum(n.sum(), 1.0)}
    return -lp.mean(), (state, metrics)

  def e_step(params, state, batch, weights):
    del state
    stats = e_step_stats(params["model"], batch[OBS], lengths(batch), weights)
    if pc or (epc and kind == "categorical"):
      stats["log_prior"] = log_prior(params["model"], pc, epc)
    return stats

  def m_step(params, state, stats):
    return {"model": m_step_params(params["model"], stats, pc, epc, min_var)}, state

  def eval_fn(params, state, batch, rng, **kw):
    del state, rng, kw
    lp = log_px(params["model"], batch[OBS], lengths(batch))
    n = _lengths(batch[OBS], lengths(batch)).astype(lp.dtype)
    return {"log_px": lp, "log_px_per_step": lp / jnp.maximum(n, 1.0), "steps": n}

  def sample(params, state, rng, n):
    del state
    return sample_paths(params["model"], rng, n, t_max, dim)[1]

  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      eval_units={"log_px": "nats per sequence, exact (forward algorithm)",
                  "log_px_per_step": "nats per step, exact (forward algorithm)",
                  "steps": "valid steps"},
      eval_weights={"log_px_per_step": "steps"},
      sample_field=OBS,
      em=types.EM(e_step=e_step, m_step=m_step))
