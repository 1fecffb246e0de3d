"""Factor analysis and probabilistic PCA, fitted by EM, in closed form, or by SGD.

Families (config.family):
  factor_analysis  x = W z + mu + eps, z ~ N(0, I_k), eps ~ N(0, Psi), Psi diagonal
  ppca             the same with Psi = sigma^2 I (Tipping & Bishop 1999)
so p(x) = N(x; mu, C), C = W W^T + Psi, x: f[D] (an image flattened, pixels on
the data variant's scale, or a point).

Parameters ({"model": ...}), valid for any value, so SGD trains the same model:
  w          [D, k]  factor loadings
  mu         [D]     mean
  log_psi    [D]     log of the noise variances (factor_analysis)
  log_sigma2 []      log of the isotropic noise variance (ppca)
Every use of the model (log-likelihood, sampling, posterior) reads the noise
variance as max(exp(log_psi), min_variance): `min_variance` is a floor in
squared data units. Without it a pixel that is constant in the training data
(scikit-learn's digits have three that are always 0) drives its variance to 0
and log p(x) to +inf; with it, that pixel contributes exactly
-log(2 pi min_variance) / 2 nats to every example that has the constant
value, so densities on such data depend on the floor and are comparable only
at the same floor and preprocessing. scikit-learn's FactorAnalysis floors at
1e-12 (hard-coded).

Log-likelihood, per example in nats, in O(D k^2) by the Woodbury identity and
the matrix determinant lemma in whitened coordinates (W~ = Psi^-1/2 W,
r~ = Psi^-1/2 (x - mu), M = I + W~^T W~ = L L^T, z = M^-1 W~^T r~ the
posterior mean):
  log p(x) = -(D log 2 pi + sum_d log psi_d + 2 sum log diag L
               + |r~ - W~ z|^2 + |z|^2) / 2,
the quadratic form r~^T (I + W~ W~^T)^-1 r~ written as the sum of squares it
is at its minimizer z, so rounding can never make it negative.

EM (`types.EM`). The E-step returns weighted sums: "count" = sum w_i,
"loglik", "sum_center" = sum w_i c and the first and second moments of x - c
about the current mean c ("sum_d", "sum_dd"; the shift keeps the float32
covariance accurate, and carrying c as a sum keeps every entry additive). From
them the M-step forms the sample mean and covariance S (normalized by the
count, the ML estimate), sets mu to the mean, and then, by `solver`:
  factor_analysis "em"    Rubin & Thayer (1982) EM: with A = S~ W~ (S~ =
                          Psi^-1/2 S Psi^-1/2), W~' = A (M + W~^T A)^-1 M and
                          Psi' = diag(S - W' beta S), beta = M^-1 W^T Psi^-1.
  factor_analysis "svd"   scikit-learn's FactorAnalysis iteration (Barber 2012,
                          21.2.33): W the exact maximizer given Psi (top-k
                          eigenpairs of S~: W~ = U (Lambda - I)_+^1/2), then
                          Psi' = diag(S - W W^T), which is one EM step from
                          there; also monotone, and much faster.
  ppca "em"               Tipping & Bishop's EM: the "em" update with Psi =
                          sigma^2 I and sigma^2' = mean_d Psi'_dd.
  ppca "closed_form"      the exact ML solution (`ppca_closed_form`):
                          W = U_k (Lambda_k - sigma^2 I)^1/2, sigma^2 = the mean of
                          the D - k discarded eigenvalues of S; one M-step jumps
                          to the optimum.
Variances below `min_variance` are clipped to it. An empty E-step (count 0)
keeps the parameters.

Initialization: mu and the per-pixel variances v of the first batch (the
whole training split under the EM trainer, padding weighted out), Psi = max(v,
min_variance) (sigma^2 = its mean), W = sqrt(v) * G * init_scale / sqrt(k), G
~ N(0, 1). A constant pixel gets a zero row of W, so neither route ever
couples it to the others.

`eval_fn` gives `log_px`: log p(x) per example in nats, exact (and `bpd` for
the dequantized_8bit variant); `encode` is the posterior mean E[z | x] =
M^-1 W~^T r~, `decode` W z + mu.

Config keys (config.model): num_components (k), min_variance (default 1e-6),
solver ("em" default; "svd" | "closed_form" as above), init_scale (0.1).
"""
import math

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types
from gen_jax.data import spec as spec_lib
from gen_jax.models import accounting

SOLVERS = {"factor_analysis": ("em", "svd"), "ppca": ("em", "closed_form")}
LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- Gaussian pieces

def _solve(w, mu, psi, x):
  """(W~ f[D, k], r~ f[B, D], L f[k, k], z = E[z | x] f[k, B]) in whitened coordinates.

  L L^T = M = I + W~^T W~. (A QR of [W~; I] would not square M's condition
  number, but JAX's QR derivative is far less accurate in float32 than the
  Cholesky's, which SGD needs.)
  """
  k = w.shape[1]
  s = jnp.sqrt(psi)
  wh = w / s[:, None]                                      # Psi^-1/2 W
  rh = (x - mu) / s                                        # Psi^-1/2 (x - mu)
  chol = jnp.linalg.cholesky(jnp.eye(k, dtype=w.dtype) + wh.T @ wh)
  z = jax.scipy.linalg.cho_solve((chol, True), (rh @ wh).T)
  return wh, rh, chol, z


def log_prob(w, mu, psi, x):
  """log N(x; mu, W W^T + diag(psi)) per example, nats: f[B].

  Args:
    w: f[D, k] loadings; mu: f[D]; psi: f[D] noise variances (> 0);
    x: f[B, D].
  """
  d = w.shape[0]
  wh, rh, chol, z = _solve(w, mu, psi, x)
  # r~^T (I + W~ W~^T)^-1 r~ = min_z |r~ - W~ z|^2 + |z|^2: a sum of squares at the
  # minimizer, so it cannot cancel to a negative number.
  e = rh - (wh @ z).T
  quad = jnp.sum(e * e, -1) + jnp.sum(z * z, 0)
  log_det = jnp.sum(jnp.log(psi)) + 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
  return -0.5 * (d * LOG_2PI + log_det + quad)


def covariance(w, psi):
  """The model covariance W W^T + diag(psi): f[D, D] (scikit-learn's get_covariance)."""
  return w @ w.T + jnp.diag(psi)


def precision(w, psi):
  """(W W^T + diag(psi))^-1 by Woodbury, f[D, D] (scikit-learn's get_precision)."""
  k = w.shape[1]
  pw = w / psi[:, None]                                    # Psi^-1 W
  m = jnp.eye(k, dtype=w.dtype) + w.T @ pw
  return jnp.diag(1.0 / psi) - pw @ jnp.linalg.solve(m, pw.T)


def posterior_mean(w, mu, psi, x):
  """E[z | x] = (I + W^T Psi^-1 W)^-1 W^T Psi^-1 (x - mu): f[B, k] for x f[B, D]."""
  return _solve(w, mu, psi, x)[3].T


# --------------------------------------------------------------------------- EM updates

def moments(stats: dict):
  """(count, mean f[D], ML covariance f[D, D]) from the E-step sums."""
  n = stats["count"]
  n_safe = jnp.where(n > 0, n, 1.0)
  center = stats["sum_center"] / n_safe
  delta = stats["sum_d"] / n_safe                          # mean - center
  cov = stats["sum_dd"] / n_safe - jnp.outer(delta, delta)
  cov = 0.5 * (cov + cov.T)
  return n, center + delta, cov


def em_update(cov, w, psi):
  """One Rubin-Thayer EM step for (W, diag Psi) given the sample covariance.

  Args:
    cov: f[D, D] sample covariance S (about the sample mean); w: f[D, k];
    psi: f[D] current noise variances.
  Returns:
    (W' f[D, k], Psi' f[D]) before any floor; for PPCA, sigma^2' = mean(Psi').
  """
  k = w.shape[1]
  s = jnp.sqrt(psi)
  wh = w / s[:, None]
  sh = cov / jnp.outer(s, s)                               # Psi^-1/2 S Psi^-1/2
  m = jnp.eye(k, dtype=w.dtype) + wh.T @ wh
  a = sh @ wh                                              # [D, k]
  wh_new = a @ jnp.linalg.solve(m + wh.T @ a, m)           # A (M + W~^T A)^-1 M
  sb = a @ jnp.linalg.inv(m)                               # Psi^-1/2 S beta^T
  psi_new = jnp.diagonal(cov) - psi * jnp.sum(wh_new * sb, -1)
  return s[:, None] * wh_new, psi_new


def svd_update(cov, psi, k: int):
  """scikit-learn's FactorAnalysis step: W maximizing p given Psi, then Psi' = diag(S - W W^T).

  Returns (W f[D, k], Psi' f[D]) before any floor.
  """
  s = jnp.sqrt(psi)
  lam, u = jnp.linalg.eigh(cov / jnp.outer(s, s))          # ascending
  lam, u = lam[::-1][:k], u[:, ::-1][:, :k]
  w = s[:, None] * u * jnp.sqrt(jnp.maximum(lam - 1.0, 0.0))
  return w, jnp.diagonal(cov) - jnp.sum(w * w, -1)


def ppca_closed_form(stats: dict, k: int, min_variance: float = 0.0) -> dict:
  """The maximum-likelihood PPCA parameters of the E-step sums (Tipping & Bishop 1999).

  W = U_k (Lambda_k - sigma^2 I)^1/2 with the top-k eigenpairs of the ML sample
  covariance, sigma^2 = max(mean of the other D - k eigenvalues, min_variance),
  mu = the sample mean. Returns {"w": f[D, k], "mu": f[D], "log_sigma2": f[]}.
  """
  _, mean, cov = moments(stats)
  lam, u = jnp.linalg.eigh(cov)
  lam, u = lam[::-1], u[:, ::-1]
  sigma2 = jnp.maximum(jnp.mean(lam[k:]), min_variance)
  w = u[:, :k] * jnp.sqrt(jnp.maximum(lam[:k] - sigma2, 0.0))
  return {"w": w, "mu": mean, "log_sigma2": jnp.log(sigma2)}


# --------------------------------------------------------------------------- the family

def _field(spec: dict) -> str:
  name = spec_lib.of_field(spec, "image") or spec_lib.of_field(spec, "points")
  if name is None:
    raise errors.ConfigError(f"factor analysis needs an image or points field; the data has "
                             f"{spec_lib.describe(spec)}")
  return name


def _check(family: str, k: int, d: int, solver: str, floor: float, init_scale: float) -> None:
  if solver not in SOLVERS[family]:
    raise errors.ConfigError(errors.choices(f"model.solver of {family}", solver,
                                            SOLVERS[family]))
  top = d - 1 if family == "ppca" else d
  if not 1 <= k <= top:
    raise errors.ConfigError(
        f"model.num_components must be in [1, {top}] for {family} on {d}-dimensional data "
        f"(got {k})" + ("; PPCA's noise variance is the mean of the D - k discarded "
                        "eigenvalues" if family == "ppca" else ""))
  if not (math.isfinite(floor) and floor > 0):
    raise errors.ConfigError(
        f"model.min_variance must be a finite number > 0 (got {floor}): without a floor the "
        f"variance of a constant pixel collapses to 0 and log p(x) becomes infinite")
  if not (math.isfinite(init_scale) and init_scale > 0):
    raise errors.ConfigError(f"model.init_scale must be > 0 (got {init_scale})")


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """The "factor_analysis" or "ppca" family (config.family) on the data field of `spec`."""
  family_name = config.family
  if family_name not in SOLVERS:
    raise errors.ConfigError(errors.choices("factor-analysis family", family_name, SOLVERS))
  isotropic = family_name == "ppca"
  m = config.model
  field = _field(spec)
  shape = tuple(spec[field].shape)
  d = math.prod(shape)
  if "num_components" not in m:
    raise errors.ConfigError(f"{family_name} needs model.num_components (the latent "
                             f"dimension k)")
  k = int(m.num_components)
  solver = m.get("solver", "em")
  floor = float(m.get("min_variance", 1e-6))
  init_scale = float(m.get("init_scale", 0.1))
  _check(family_name, k, d, solver, floor, init_scale)
  image = spec[field].modality == "image"
  discrete = config.data.variant == "dequantized_8bit"
  noise_key = "log_sigma2" if isotropic else "log_psi"

  def flat(batch, dtype):
    x = batch[field]
    return x.reshape(x.shape[0], -1).astype(dtype)

  def unpack(params):
    """(w, mu, psi f[D]) with the floor applied."""
    p = params["model"]
    psi = jnp.maximum(jnp.exp(p[noise_key]), floor)
    return p["w"], p["mu"], jnp.broadcast_to(psi, (d,))

  def pack(w, mu, psi):
    psi = jnp.maximum(psi, floor)
    return {"w": w, "mu": mu, noise_key: jnp.log(jnp.mean(psi) if isotropic else psi)}

  def loglik(params, batch):
    w, mu, psi = unpack(params)
    return log_prob(w, mu, psi, flat(batch, w.dtype))

  def init(rng, batch):
    dtype = types.real_dtype()
    x = flat(batch, dtype)
    wt = batch.get(spec_lib.WEIGHT, jnp.ones(x.shape[:1], dtype)).astype(dtype)
    n = jnp.maximum(jnp.sum(wt), 1.0)
    mu = jnp.sum(wt[:, None] * x, 0) / n
    var = jnp.sum(wt[:, None] * (x - mu) ** 2, 0) / n
    g = jax.random.normal(rng, (d, k), dtype)
    w = jnp.sqrt(var)[:, None] * g * (init_scale / math.sqrt(k))
    return {"model": pack(w, mu, var)}, {}

  def e_step(params, state, batch, weights):
    del state
    w, mu, psi = unpack(params)
    x = flat(batch, w.dtype)
    wt = weights.astype(w.dtype)
    diff = x - mu
    wd = wt[:, None] * diff
    return {"count": jnp.sum(wt), "loglik": jnp.sum(wt * log_prob(w, mu, psi, x)),
            "sum_center": jnp.sum(wt) * mu, "sum_d": jnp.sum(wd, 0), "sum_dd": wd.T @ diff}

  def m_step(params, state, stats):
    w, _, psi = unpack(params)
    n, mean, cov = moments(stats)
    if isotropic and solver == "closed_form":
      new = ppca_closed_form(stats, k, floor)
    else:
      if solver == "svd":
        w_new, psi_new = svd_update(cov, psi, k)
      else:
        w_new, psi_new = em_update(cov, w, psi)
      new = pack(w_new, mean, psi_new)
    new = jax.tree.map(lambda a, b: jnp.where(n > 0, a, b).astype(b.dtype), new,
                       params["model"])
    return {"model": new}, state

  def loss(player, params, state, batch, rng):
    del player, rng
    return -jnp.mean(loglik(params, batch)), (state, {})

  def eval_fn(params, state, batch, rng):
    del state, rng
    lp = loglik(params, batch)
    out = {"log_px": lp}
    if discrete:
      out["bpd"] = accounting.bits_per_dim(-lp, d)
    return out

  def to_data(x):
    x = x.reshape((x.shape[0],) + shape)
    return jnp.clip(x, 0.0, 1.0) if image else x

  def sample(params, state, rng, n):
    del state
    w, mu, psi = unpack(params)
    rng_z, rng_eps = jax.random.split(rng)
    z = jax.random.normal(rng_z, (n, k), w.dtype)
    eps = jax.random.normal(rng_eps, (n, d), w.dtype)
    return to_data(z @ w.T + mu + jnp.sqrt(psi) * eps).astype(jnp.float32)

  def encode(params, state, x):
    del state
    w, mu, psi = unpack(params)
    return posterior_mean(w, mu, psi, x.reshape(x.shape[0], -1).astype(w.dtype))

  def decode(params, state, z):
    del state
    w, mu, _ = unpack(params)
    return to_data(z.astype(w.dtype) @ w.T + mu).astype(jnp.float32)

  what = (f"{d} pixels on the {config.data.variant!r} scale" if image else f"{d}-dim points")
  units = {"log_px": f"nats per example ({what}; noise variances floored at "
                     f"min_variance={floor:g}), exact"}
  if discrete:
    units["bpd"] = "bits/dim on the 8-bit scale: (-log p(x) + D ln 256) / (D ln 2)"
  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      encode=encode, decode=decode, eval_units=units, sample_field=field,
      em=types.EM(e_step=e_step, m_step=m_step))
