"""RBM partition functions: exact enumeration, annealed importance sampling and its reverse.

An RBM is a dict of arrays (the units of every quantity below are nats):
  w: f[V, H]   visible-hidden weights
  bv: f[V]     visible biases (the means of Gaussian visible units)
  bh: f[H]     hidden biases
  log_sigma: f[V]   (Gaussian visible units only) log standard deviations
and `visible` ("bernoulli" | "gaussian", a static argument) names the kind of
visible unit; hidden units are always binary. Energies:
  bernoulli  E(v, h) = -v.bv - h.bh - v W h
  gaussian   E(v, h) = sum_i (v_i - bv_i)^2 / (2 s_i^2) - h.bh - (v / s) W h
The free energy F(v) = -log sum_h exp(-E(v, h)) is in closed form, and
log p(v) = -F(v) - log Z.

Partition functions:
  `log_z_exact`  sums over the 2^n states of the smaller layer (n <= 25;
                 Gaussian visible units: over the hidden layer, the Gaussian
                 integral in closed form), in chunks under `lax.scan`.
  `ais`          annealed importance sampling (Neal 2001; Salakhutdinov &
                 Murray 2008) from a base RBM with W = 0, whose log Z is exact
                 (`log_z_zero_weight`). The intermediate models interpolate the
                 JOINT energies, E_b = (1 - b) E_base + b E_target, which is the
                 RBM `interpolate(base, target, b)`, so every intermediate
                 distribution has the same block Gibbs sampler. Each chain's log
                 weight sums log f_{b_k}(v) - log f_{b_{k-1}}(v) over the schedule
                 (f = exp(-F) of the interpolated RBM; v-independent offsets
                 telescope), with compensated summation; log Z^ = log Z_base +
                 log mean_m w_m is an unbiased estimate of Z in linear space, so
                 in log space it UNDER-estimates log Z on average (Jensen) and
                 log p^(v) = -F(v) - log Z^ over-estimates log p(v). Its standard
                 error in log space is the delta method's sd(w) / (sqrt(M) mean(w)).
  `reverse_ais`  the same annealing run from the target back to the base
                 (`betas` reversed): started from exact samples of the target
                 its mean weight estimates Z_base / Z, so log Z_base - log mean w
                 is an over-estimate of log Z on average (Burda, Grosse &
                 Salakhutdinov 2015): the upper side of the sandwich.
  `raise_log_prob`  RAISE (the same paper): reverse annealing started AT a test
                 example v gives an unbiased estimate of q(v), the probability
                 of v under the annealing chain run forwards, hence a stochastic
                 LOWER bound on log q(v). q -> p as the schedule gets finer, but
                 q is another model: where the Gibbs chains do not reach all of
                 p's modes it can put MORE mass on data than p does, and RAISE
                 then exceeds log p (measured for CD-1 RBMs on MNIST: +5 to +9
                 nats against the exact log p of a 20-hidden-unit RBM). It is
                 conservative for log p only when the annealing mixes.

Schedules (`schedule`): "paper" is the vector of Salakhutdinov's MATLAB demo,
[0:1/1000:0.5, 0.5:1/10000:0.9, 0.9:1/100000:1.0] = 14,503 inverse
temperatures (0.5 and 0.9 appear twice, as there), used with 100 chains;
"piecewise" is the same three-segment shape with about `num` values;
"linear" and "sigmoid" (Grosse et al. 2013) have exactly `num`.

Block Gibbs sweeps (v -> h -> v) run under `lax.scan` (`gibbs_chain`) or, for a
traced number of sweeps (a CD-k schedule), `lax.fori_loop`.
"""
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors

VISIBLE = ("bernoulli", "gaussian")
SCHEDULES = ("paper", "piecewise", "linear", "sigmoid")
PAPER_NUM_BETAS = 14503
PAPER_CHAINS = 100
MAX_ENUMERATED_UNITS = 25
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _check_visible(visible: str) -> None:
  if visible not in VISIBLE:
    raise errors.ConfigError(errors.choices("visible unit type", visible, VISIBLE))


# ------------------------------------------------------------------ energies and conditionals

def _scaled(rbm: dict, v, visible: str):
  """v / sigma for Gaussian units, v itself for binary ones: what multiplies W."""
  return v * jnp.exp(-rbm["log_sigma"]) if visible == "gaussian" else v


def _visible_term(rbm: dict, v, visible: str):
  """-E's visible part: v.bv (binary) or -sum (v - bv)^2 / (2 s^2) (Gaussian): f[B]."""
  if visible == "gaussian":
    z = (v - rbm["bv"]) * jnp.exp(-rbm["log_sigma"])
    return -0.5 * jnp.sum(z * z, -1)
  return v @ rbm["bv"]


def free_energy(rbm: dict, v, visible: str = "bernoulli"):
  """F(v) = -log sum_h exp(-E(v, h)) in nats: v f[B, V] -> f[B]."""
  a = rbm["bh"] + _scaled(rbm, v, visible) @ rbm["w"]
  return -_visible_term(rbm, v, visible) - jnp.sum(jax.nn.softplus(a), -1)


def energy(rbm: dict, v, h, visible: str = "bernoulli"):
  """E(v, h) in nats: v f[B, V], h f[B, H] -> f[B]."""
  inter = jnp.sum((_scaled(rbm, v, visible) @ rbm["w"]) * h, -1)
  return -_visible_term(rbm, v, visible) - h @ rbm["bh"] - inter


def hidden_logits(rbm: dict, v, visible: str = "bernoulli"):
  """log-odds of p(h_j = 1 | v): f[B, H]."""
  return rbm["bh"] + _scaled(rbm, v, visible) @ rbm["w"]


def visible_mean(rbm: dict, h, visible: str = "bernoulli"):
  """E[v | h]: sigmoid(bv + W h) (binary) or bv + s * (W h) (Gaussian): f[B, V]."""
  a = h @ rbm["w"].T
  if visible == "gaussian":
    return rbm["bv"] + jnp.exp(rbm["log_sigma"]) * a
  return jax.nn.sigmoid(rbm["bv"] + a)


def sample_visible(rng, rbm: dict, h, visible: str = "bernoulli"):
  """(v ~ p(v | h), E[v | h]): f[B, V] each."""
  mean = visible_mean(rbm, h, visible)
  if visible == "gaussian":
    v = mean + jnp.exp(rbm["log_sigma"]) * jax.random.normal(rng, mean.shape, mean.dtype)
  else:
    v = (jax.random.uniform(rng, mean.shape, mean.dtype) < mean).astype(mean.dtype)
  return v, mean


def sample_hidden(rng, rbm: dict, v, visible: str = "bernoulli"):
  """h ~ p(h | v): f[B, H] in {0, 1}."""
  p = jax.nn.sigmoid(hidden_logits(rbm, v, visible))
  return (jax.random.uniform(rng, p.shape, p.dtype) < p).astype(p.dtype)


def gibbs_sweep(rng, rbm: dict, v, visible: str = "bernoulli"):
  """One block Gibbs sweep v -> h -> v': (v', E[v' | h]), f[B, V] each."""
  r_h, r_v = jax.random.split(rng)
  return sample_visible(r_v, rbm, sample_hidden(r_h, rbm, v, visible), visible)


def gibbs_chain(rng, rbm: dict, v, num_sweeps: int, visible: str = "bernoulli"):
  """`num_sweeps` (static) Gibbs sweeps from v under lax.scan: (v, E[v | h]) of the last."""
  def body(carry, r):
    v, _ = carry
    return gibbs_sweep(r, rbm, v, visible), None
  (v, mean), _ = jax.lax.scan(body, (v, v), jax.random.split(rng, num_sweeps))
  return v, mean


def gibbs_k(rng, rbm: dict, v, k, visible: str = "bernoulli"):
  """k >= 1 Gibbs sweeps, k possibly traced (a CD-k schedule): lax.fori_loop.

  Sweep i uses key fold_in(rng, i), so a static and a traced k give the same chain.
  Returns (v, E[v | h]) of the last sweep and E[v | h] of the first (a reconstruction).
  """
  v1, m1 = gibbs_sweep(jax.random.fold_in(rng, 0), rbm, v, visible)

  def body(i, carry):
    v, _ = carry
    return gibbs_sweep(jax.random.fold_in(rng, i), rbm, v, visible)
  v, mean = jax.lax.fori_loop(1, k, body, (v1, m1))
  return v, mean, m1


# --------------------------------------------------------------------- exact partition functions

def _states(codes, n: int, dtype):
  """The n-bit binary vectors of integer codes: f[len(codes), n]."""
  return ((codes[:, None] >> jnp.arange(n, dtype=codes.dtype)) & 1).astype(dtype)


def log_sum_over_states(fn, n: int, dtype, chunk: int = 4096):
  """log sum_{s in {0,1}^n} exp(fn(s)), fn: f[C, n] -> f[C], in chunks of states (lax.scan)."""
  if n > MAX_ENUMERATED_UNITS:
    raise errors.ConfigError(f"exact enumeration over {n} binary units (2^{n} states) is too "
                             f"large; the limit is {MAX_ENUMERATED_UNITS}: use AIS")
  total = 1 << n
  chunk = min(chunk, total)

  def body(acc, start):
    codes = start + jnp.arange(chunk, dtype=jnp.int32)
    return jnp.logaddexp(acc, jax.nn.logsumexp(fn(_states(codes, n, dtype)))), None
  starts = jnp.arange(0, total, chunk, dtype=jnp.int32)
  acc, _ = jax.lax.scan(body, jnp.array(-jnp.inf, dtype), starts)
  return acc


def log_z_exact(rbm: dict, visible: str = "bernoulli", chunk: int = 4096):
  """log Z by enumeration over the smaller binary layer (the hidden one for Gaussian units).

  Summing out the other layer in closed form:
    over h:  log Z = log sum_h exp(h.bh + sum_i softplus(bv_i + (W h)_i))        (binary v)
             log Z = sum_i (log s_i + log(2 pi)/2)
                     + log sum_h exp(h.bh + (bv/s).(W h) + |W h|^2 / 2)          (Gaussian v)
    over v:  log Z = log sum_v exp(-F(v))                                         (binary v)
  """
  _check_visible(visible)
  num_v, num_h = rbm["w"].shape
  dtype = rbm["w"].dtype
  if visible == "gaussian":
    mu = rbm["bv"] * jnp.exp(-rbm["log_sigma"])

    def fn(h):
      a = h @ rbm["w"].T
      return h @ rbm["bh"] + a @ mu + 0.5 * jnp.sum(a * a, -1)
    const = jnp.sum(rbm["log_sigma"]) + num_v * HALF_LOG_2PI
    return const + log_sum_over_states(fn, num_h, dtype, chunk)
  if num_h <= num_v:
    def fn(h):
      return h @ rbm["bh"] + jnp.sum(jax.nn.softplus(rbm["bv"] + h @ rbm["w"].T), -1)
    return log_sum_over_states(fn, num_h, dtype, chunk)
  return log_sum_over_states(lambda v: -free_energy(rbm, v), num_v, dtype, chunk)


def log_z_zero_weight(rbm: dict, visible: str = "bernoulli"):
  """log Z of `rbm` with W set to 0 (independent units), exact; W itself is ignored.

  sum_i softplus(bv_i) (binary v) or sum_i (log s_i + log(2 pi)/2) (Gaussian v),
  plus sum_j softplus(bh_j).
  """
  _check_visible(visible)
  hid = jnp.sum(jax.nn.softplus(rbm["bh"]))
  if visible == "gaussian":
    return hid + jnp.sum(rbm["log_sigma"]) + rbm["bv"].shape[0] * HALF_LOG_2PI
  return hid + jnp.sum(jax.nn.softplus(rbm["bv"]))


# ------------------------------------------------------------------------------------ AIS

def base_rate_rbm(target: dict, visible_mean_data, pseudo_count: float = 1.0,
                  num_examples: float = 1.0) -> dict:
  """The base model of Salakhutdinov & Murray: W = 0, bh = 0, visible biases from data.

  Binary units: bv = logit(p), p = (sum_n v_n + a) / (N + 2 a), from the data
  mean `visible_mean_data` f[V] over N = `num_examples` examples with pseudo-count
  a = `pseudo_count`; Gaussian units: bv = the data mean, log_sigma the target's.
  """
  w = jnp.zeros_like(target["w"])
  out = {"w": w, "bh": jnp.zeros_like(target["bh"])}
  if "log_sigma" in target:
    out.update(bv=jnp.asarray(visible_mean_data, w.dtype), log_sigma=target["log_sigma"])
    return out
  n = float(num_examples)
  p = (jnp.asarray(visible_mean_data, w.dtype) * n + pseudo_count) / (n + 2.0 * pseudo_count)
  out["bv"] = jnp.log(p) - jnp.log1p(-p)
  return out


def zero_weight_rbm(target: dict) -> dict:
  """The base model with the target's own biases and W = 0 (annealing scales W only)."""
  return {**target, "w": jnp.zeros_like(target["w"])}


def interpolate(base: dict, target: dict, beta) -> dict:
  """The RBM whose energy is (1 - beta) E_base + beta E_target (base: W = 0).

  For Gaussian units the base must share the target's log_sigma (the path
  moves the means; the v-independent offset it leaves telescopes in AIS).
  """
  out = {"w": beta * target["w"],
         "bv": (1.0 - beta) * base["bv"] + beta * target["bv"],
         "bh": (1.0 - beta) * base["bh"] + beta * target["bh"]}
  if "log_sigma" in target:
    out["log_sigma"] = target["log_sigma"]
  return out


def schedule(kind: str = "paper", num: int = PAPER_NUM_BETAS) -> np.ndarray:
  """Inverse temperatures f64[K + 1] from 0 to 1 (see the module docstring)."""
  if kind not in SCHEDULES:
    raise errors.ConfigError(errors.choices("AIS schedule", kind, SCHEDULES))
  if kind == "paper":
    return np.concatenate([np.linspace(0.0, 0.5, 501), np.linspace(0.5, 0.9, 4001),
                           np.linspace(0.9, 1.0, 10001)])
  if num < 2:
    raise errors.ConfigError(f"an AIS schedule needs at least 2 inverse temperatures (got {num})")
  if kind == "linear":
    return np.linspace(0.0, 1.0, num)
  if kind == "sigmoid":   # Grosse, Maddison & Salakhutdinov 2013, delta = 4
    s = 1.0 / (1.0 + np.exp(-np.linspace(-4.0, 4.0, num)))
    return (s - s[0]) / (s[-1] - s[0])
  # piecewise: the paper's 500 : 4,000 : 10,000 intervals, scaled to ~num - 1 in all.
  n = [max(1, round((num - 1) * f / 14500)) for f in (500, 4000, 10000)]
  return np.concatenate([np.linspace(0.0, 0.5, n[0] + 1), np.linspace(0.5, 0.9, n[1] + 1)[1:],
                         np.linspace(0.9, 1.0, n[2] + 1)[1:]])


def sample_zero_weight(rng, base: dict, n: int, visible: str = "bernoulli"):
  """n exact samples of v from an RBM with W = 0: f[n, V]."""
  mean = visible_mean(base, jnp.zeros((n, base["bh"].shape[0]), base["bh"].dtype), visible)
  if visible == "gaussian":
    return mean + jnp.exp(base["log_sigma"]) * jax.random.normal(rng, mean.shape, mean.dtype)
  return (jax.random.uniform(rng, mean.shape, mean.dtype) < mean).astype(mean.dtype)


@partial(jax.jit, static_argnames=("visible",))
def anneal(rng, base: dict, target: dict, betas, v, visible: str = "bernoulli"):
  """Runs chains v through the schedule `betas` f[K + 1]: per-chain log weights f[M].

  log w = sum_{k=1..K} [log f_{b_k}(v_{k-1}) - log f_{b_{k-1}}(v_{k-1})], where
  v_k is one Gibbs sweep at b_k from v_{k-1} (none after the last), f = exp(-F)
  of `interpolate(base, target, b)`. The 2 matrix products of a step are shared
  by the two log f's and the sweep. Returns (log_w f[M], final v f[M, V]).
  """
  betas = jnp.asarray(betas, v.dtype)
  dv, dh = target["bv"] - base["bv"], target["bh"] - base["bh"]

  def log_f(beta, v, a):   # a = (v/s) W: f[M, H]
    rbm_b = {"bv": base["bv"] + beta * dv, "log_sigma": target.get("log_sigma")}
    return (_visible_term(rbm_b, v, visible)
            + jnp.sum(jax.nn.softplus(base["bh"] + beta * dh + beta * a), -1))

  def increment(b_prev, b_cur, v):
    a = _scaled(target, v, visible) @ target["w"]
    return log_f(b_cur, v, a) - log_f(b_prev, v, a), a

  def step(carry, inp):
    v, total, comp = carry
    b_prev, b_cur, r = inp
    inc, a = increment(b_prev, b_cur, v)
    y = inc - comp                      # Kahan: keeps the sum of 14,503 terms exact to ~ulp
    t = total + y
    comp, total = (t - total) - y, t
    r_h, r_v = jax.random.split(r)
    p_h = jax.nn.sigmoid(base["bh"] + b_cur * dh + b_cur * a)
    h = (jax.random.uniform(r_h, p_h.shape, p_h.dtype) < p_h).astype(v.dtype)
    v, _ = sample_visible(r_v, interpolate(base, target, b_cur), h, visible)
    return (v, total, comp), None

  zeros = jnp.zeros(v.shape[:1], v.dtype)
  keys = jax.random.split(rng, betas.shape[0] - 2)
  (v, total, comp), _ = jax.lax.scan(step, (v, zeros, zeros), (betas[:-2], betas[1:-1], keys))
  last, _ = increment(betas[-2], betas[-1], v)
  return total - comp + last, v


def log_mean_exp(x, axis=None):
  """log mean exp(x) along `axis`, stably."""
  n = x.size if axis is None else x.shape[axis]
  return jax.nn.logsumexp(x, axis=axis) - math.log(n)


def log_z_estimate(log_w, log_z_base):
  """(log Z^, its standard error in log space) from AIS log weights f[M].

  log Z^ = log Z_base + log mean w; s.e. = sd(w) / (sqrt(M) mean(w)) (delta
  method on the mean of the weights, ddof 1); 0 for M = 1.
  """
  m = log_w.shape[0]
  shifted = jnp.exp(log_w - jnp.max(log_w))
  mean = jnp.mean(shifted)
  sd = jnp.std(shifted, ddof=1) if m > 1 else jnp.zeros_like(mean)
  return log_z_base + log_mean_exp(log_w), sd / (math.sqrt(m) * mean)


# ais / reverse_ais / raise_log_prob are Python functions around ONE jitted `anneal`, so a
# forward and a reverse run of the same shapes (chains x units, number of temperatures)
# share its compiled program; the small steps around it have their own jits.

@partial(jax.jit, static_argnames=("num_chains", "visible"))
def _start(rng, base: dict, num_chains: int, visible: str):
  return sample_zero_weight(rng, base, num_chains, visible), log_z_zero_weight(base, visible)


_estimate = jax.jit(log_z_estimate)


def ais(rng, base: dict, target: dict, betas, num_chains: int = PAPER_CHAINS,
        visible: str = "bernoulli") -> dict:
  """AIS estimate of log Z of `target` from `base` (W = 0), M = num_chains chains.

  Returns {"log_z": f[] (nats, AIS estimate), "log_z_se": f[] (s.e. in log space),
  "log_z_base": f[] (exact), "log_w": f[M]}.
  """
  _check_visible(visible)
  r0, r1 = jax.random.split(rng)
  v0, log_z_base = _start(r0, base, num_chains, visible)
  log_w, _ = anneal(r1, base, target, jnp.asarray(betas, v0.dtype), v0, visible)
  log_z, se = _estimate(log_w, log_z_base)
  return {"log_z": log_z, "log_z_se": se, "log_z_base": log_z_base, "log_w": log_w}


def reverse_ais(rng, base: dict, target: dict, betas, v_start, visible: str = "bernoulli"):
  """Reverse annealing target -> base from states v_start f[M, V]: log weights f[M].

  `anneal` along the schedule reversed (1 -> 0). With v_start exact samples of
  the target, mean(w) is unbiased for Z_base / Z, so
  `log_z_zero_weight(base) - log_mean_exp(log_w)` over-estimates log Z on average.
  """
  _check_visible(visible)
  descending = jnp.asarray(np.asarray(betas)[::-1].copy(), v_start.dtype)
  return anneal(rng, base, target, descending, v_start, visible)[0]


@partial(jax.jit, static_argnames=("num_chains", "visible"))
def _raise_finish(base: dict, target: dict, v, log_w, num_chains: int, visible: str):
  log_w = log_w.reshape(v.shape[0], num_chains)
  return (-free_energy(target, v, visible) - log_z_zero_weight(base, visible)
          + log_mean_exp(log_w, axis=1))


def raise_log_prob(rng, base: dict, target: dict, betas, v, num_chains: int = 1,
                   visible: str = "bernoulli"):
  """RAISE: a stochastic lower bound on log q(v) per example, f[B] (nats).

  log p^(v) = -F(v) - log Z_base + log mean_m w_m, w_m from `reverse_ais` started
  at v (num_chains per example). Its mean is unbiased for q(v), the marginal of
  the forward annealing chain, so log p^ is a stochastic lower bound on log q(v);
  q approximates p only when the chains mix (see the module docstring).
  """
  start = jnp.repeat(jnp.asarray(v), num_chains, axis=0)
  log_w = reverse_ais(rng, base, target, betas, start, visible)
  return _raise_finish(base, target, jnp.asarray(v), log_w, num_chains, visible)
