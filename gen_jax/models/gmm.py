"""Mixture models fitted by EM (or SGD): Gaussian mixtures and mixtures of Bernoullis.

Families (config.family):
  gmm                p(x) = sum_k pi_k N(x; mu_k, Sigma_k), x: f32[D] (points, or
                     images flattened; pixels on the variant's scale), with
                     `covariance` = "full" | "diag" | "spherical" | "tied" as in
                     scikit-learn's GaussianMixture.
  mixture_bernoulli  p(x) = sum_k pi_k prod_d p_kd^x_d (1 - p_kd)^(1 - x_d), x in
                     {0, 1}^D (binarized images).

Parameters ({"model": ...}) are stored so that any value is valid, which lets
the SGD trainer fit the same family on the same log-likelihood:
  logits    [K]      log pi_k up to a constant (normalized by log_softmax)
  means     [K, D]   (gmm)
  prec_tril [K, D, D] | [D, D] (full | tied): the strictly lower part of the
            Cholesky factor U of the precision (Sigma^-1 = U^T U, U lower
            triangular); its diagonal is exp(log_prec_diag)
  log_prec_diag [K, D] | [K, D] | [K] | [D] (full | diag | spherical | tied):
            log of U's diagonal, i.e. -log of the standard deviations for diag
  logit_p   [K, D]   (mixture_bernoulli) Bernoulli logits
so log N(x; mu, Sigma) = -D/2 log 2pi + sum log diag(U) - |U (x - mu)|^2 / 2.
For diag and spherical covariances every variance is floored at reg_covar in
the density itself (EM's M-step adds reg_covar, so its variances are above
the floor; SGD meets the same floor). Full and tied covariances get
reg_covar from the M-step only: fitted by SGD they have no floor.

EM (`types.EM`): the E-step returns, summed over examples with weights w_n
and responsibilities r_nk, the counts N_k, first moments and second moments
of x - c_k about the current means c_k (for full and tied covariances the
shift by the current mean keeps the float32 update accurate; diagonal ones
use two matmuls, as scikit-learn does, and are clipped at 0 before
reg_covar is added); the M-step is the closed form:
pi_k = N_k / N, mu_k, Sigma_k + reg_covar I (scikit-learn's update). A
component whose N_k falls below `min_count` keeps its previous mean and
covariance (its weight becomes N_k / N, near 0) instead of dividing by ~0.
For mixture_bernoulli, p_kd = (S_kd + a) / (N_k + 2a) with `pseudo_count` a
(a Beta(a+1, a+1) prior; its log density is the E-step's "log_prior", so EM
is monotone in the log posterior) and pi from (N_k + a) / (N + K a).

Initialization ("kmeans++" default): k-means++ seeding on the first batch
the model is initialized with (the whole training split under the EM
trainer), `kmeans_iters` Lloyd iterations, then one M-step from the hard
assignments (scikit-learn's init_params="k-means++" followed by k-means, in
spirit). "random": random responsibilities.

`eval_fn` gives `log_px`: log p(x) per example in nats, exact.
"""
import math

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types
from gen_jax.data import spec as spec_lib

COVARIANCES = ("full", "diag", "spherical", "tied")
INITS = ("kmeans++", "random")
LOG_2PI = math.log(2.0 * math.pi)


def _field(spec: dict) -> str:
  name = spec_lib.of_field(spec, "image") or spec_lib.of_field(spec, "points")
  if name is None:
    raise errors.ConfigError(f"mixture models need an image or points field; the data has "
                             f"{spec_lib.describe(spec)}")
  return name


# --------------------------------------------------------------------------- Gaussian pieces

def _tril_mask(d: int):
  return jnp.tril(jnp.ones((d, d), bool), -1)


def _log_diag(p: dict, covariance: str, reg: float):
  """log diag(U); for diag and spherical, capped so every variance is >= reg_covar.

  EM's variances are already >= reg_covar (it adds it), so the cap changes
  nothing there; it is the same floor for gradient training, which would
  otherwise shrink the variance of a constant pixel to 0 and the density to
  +inf.
  """
  ld = p["log_prec_diag"]
  if covariance in ("diag", "spherical") and reg > 0:
    ld = jnp.minimum(ld, -0.5 * math.log(reg))
  return ld


def _prec_factor(p: dict, covariance: str, k: int, d: int, reg: float = 0.0):
  """U with Sigma^-1 = U^T U: f[K, D, D] (full/tied as [K, D, D] broadcast) or f[K, D] (diag)."""
  ld = _log_diag(p, covariance, reg)
  if covariance in ("full", "tied"):
    lower = jnp.where(_tril_mask(d), p["prec_tril"], 0.0)
    u = lower + jnp.einsum("...d,de->...de", jnp.exp(ld), jnp.eye(d))
    return jnp.broadcast_to(u, (k, d, d))
  if covariance == "diag":
    return jnp.exp(ld)
  return jnp.broadcast_to(jnp.exp(ld)[:, None], (k, d))


def _log_det_u(p: dict, covariance: str, k: int, d: int, reg: float = 0.0):
  """sum log diag(U) per component: f[K] (= -log|Sigma_k| / 2)."""
  ld = _log_diag(p, covariance, reg)
  if covariance in ("full", "diag"):
    return ld.sum(-1)
  if covariance == "spherical":
    return d * ld
  return jnp.broadcast_to(ld.sum(), (k,))


def gaussian_log_probs(p: dict, x, covariance: str, reg: float = 0.0):
  """log N(x_n; mu_k, Sigma_k): f[N, K] for x f[N, D] (variances floored at reg, see _log_diag)."""
  k, d = p["means"].shape
  u = _prec_factor(p, covariance, k, d, reg)
  if u.ndim == 3:
    diff = x[:, None, :] - p["means"][None]                # [N, K, D]
    sq = jnp.sum(jnp.einsum("kde,nke->nkd", u, diff) ** 2, -1)
  else:   # diagonal precisions: |u * (x - mu)|^2 expanded into matmuls, [N, K]
    prec, mu = u * u, p["means"]
    sq = (x * x) @ prec.T - 2.0 * x @ (mu * prec).T + jnp.sum(mu * mu * prec, -1)[None]
    sq = jnp.maximum(sq, 0.0)
  return -0.5 * d * LOG_2PI + _log_det_u(p, covariance, k, d, reg)[None] - 0.5 * sq


def _factor_params(cov, covariance: str, dtype) -> dict:
  """The stored precision factor of covariances ([K,D,D] | [K,D] | [K] | [D,D])."""
  if covariance in ("full", "tied"):
    chol = jnp.linalg.cholesky(cov)                           # Sigma = L L^T
    d = cov.shape[-1]
    eye = jnp.broadcast_to(jnp.eye(d, dtype=dtype), cov.shape)
    u = jax.scipy.linalg.solve_triangular(chol, eye, lower=True)   # U = L^-1 lower
    diag = jnp.diagonal(u, axis1=-2, axis2=-1)
    return {"prec_tril": jnp.where(_tril_mask(d), u, 0.0), "log_prec_diag": jnp.log(diag)}
  return {"log_prec_diag": -0.5 * jnp.log(cov)}


# --------------------------------------------------------------------------- the family

def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  m = config.model
  bernoulli = config.family == "mixture_bernoulli"
  field = _field(spec)
  shape = tuple(spec[field].shape)
  d = math.prod(shape)
  k = int(m.num_components)
  covariance = "bernoulli" if bernoulli else m.get("covariance", "full")
  if k < 1:
    raise errors.ConfigError(f"model.num_components must be >= 1 (got {k})")
  if not bernoulli and covariance not in COVARIANCES:
    raise errors.ConfigError(errors.choices("model.covariance", covariance, COVARIANCES))
  init_kind = m.get("init", "kmeans++")
  if init_kind not in INITS:
    raise errors.ConfigError(errors.choices("model.init", init_kind, INITS))
  reg = float(m.get("reg_covar", 1e-6))
  a = float(m.get("pseudo_count", 0.0))
  min_count = float(m.get("min_count", 1e-6))
  kmeans_iters = int(m.get("kmeans_iters", 10))
  if bernoulli and config.data.variant not in ("binarized_static", "binarized_dynamic"):
    raise errors.ConfigError(f"mixture_bernoulli models binary pixels: use data.variant "
                             f"binarized_static or binarized_dynamic (got "
                             f"{config.data.variant!r})")

  def flat(batch):
    x = batch[field]
    return x.reshape(x.shape[0], -1).astype(types.real_dtype())

  def component_log_probs(params, x):
    """log pi_k + log p(x_n | k): f[N, K]."""
    p = params["model"]
    log_pi = jax.nn.log_softmax(p["logits"])
    if bernoulli:
      lp = p["logit_p"]
      comp = x @ jax.nn.log_sigmoid(lp).T + (1.0 - x) @ jax.nn.log_sigmoid(-lp).T
    else:
      comp = gaussian_log_probs(p, x, covariance, reg)
    return log_pi[None] + comp

  def log_prob(params, x):
    return jax.nn.logsumexp(component_log_probs(params, x), axis=-1)

  def log_prior(params):
    if not bernoulli or a == 0.0:
      return jnp.zeros((), types.real_dtype())
    p = params["model"]
    log_pi = jax.nn.log_softmax(p["logits"])
    lp = p["logit_p"]
    return a * (jnp.sum(jax.nn.log_sigmoid(lp)) + jnp.sum(jax.nn.log_sigmoid(-lp))
                + jnp.sum(log_pi))

  def e_stats(resp, x, w, center):
    """Sums for the M-step from responsibilities resp f[N, K] (rows sum to 1)."""
    rw = resp * w[:, None]
    nk = rw.sum(0)
    if bernoulli:
      return {"nk": nk, "sx": rw.T @ x}
    if covariance in ("full", "tied"):   # one batched matmul per component: [K, D, D]
      diff = jnp.swapaxes(x[:, None, :] - center[None], 0, 1)   # [K, N, D]
      weighted = diff * rw.T[..., None]
      s1 = weighted.sum(1)
      s2 = jnp.einsum("knd,kne->kde", weighted, diff)
    else:   # sums about the centers from two matmuls (scikit-learn's diagonal update)
      sx, sxx = rw.T @ x, rw.T @ (x * x)
      s1 = sx - nk[:, None] * center
      s2 = sxx - 2.0 * center * sx + nk[:, None] * center * center
    return {"nk": nk, "s1": s1, "s2": s2, "center": center * jnp.ones_like(nk)[:, None]}

  def e_step(params, state, batch, weights):
    del state
    x = flat(batch)
    w = weights.astype(x.dtype)
    joint = component_log_probs(params, x)
    lp = jax.nn.logsumexp(joint, axis=-1)
    resp = jnp.exp(joint - lp[:, None])
    center = None if bernoulli else params["model"]["means"]
    stats = e_stats(resp, x, w, center)
    stats.update(loglik=jnp.sum(w * lp), count=jnp.sum(w), log_prior=log_prior(params))
    return stats

  def m_from_stats(old: dict, stats: dict) -> dict:
    """Closed-form parameters from E-step sums (old: parameters kept for empty components)."""
    nk, n = stats["nk"], stats["count"]
    dtype = nk.dtype
    tiny = 10 * jnp.finfo(dtype).eps
    if bernoulli:
      p = (stats["sx"] + a) / (nk[:, None] + 2 * a)
      p = jnp.clip(p, tiny, 1 - tiny)
      alive = (nk > min_count)[:, None]
      logit_p = jnp.where(alive, jnp.log(p) - jnp.log1p(-p), old["logit_p"])
      pi = (nk + a) / (n + k * a)
      return {"logits": jnp.log(jnp.maximum(pi, tiny)), "logit_p": logit_p}
    alive = nk > min_count
    nk_safe = jnp.where(alive, nk, 1.0)
    delta = stats["s1"] / nk_safe[:, None]                   # mean - center
    means = jnp.where(alive[:, None], stats["center"] + delta, old["means"])
    eye = jnp.eye(d, dtype=dtype)
    if covariance in ("full", "tied"):
      cov = stats["s2"] / nk_safe[:, None, None] - jnp.einsum("kd,ke->kde", delta, delta)
      if covariance == "tied":
        cov = jnp.sum(cov * nk_safe[:, None, None] * alive[:, None, None], 0) / jnp.sum(
            jnp.where(alive, nk, 0.0))
        cov = cov + reg * eye
      else:
        cov = cov + reg * eye
    else:
      var = jnp.maximum(stats["s2"] / nk_safe[:, None] - delta * delta, 0.0)
      cov = var + reg if covariance == "diag" else var.mean(-1) + reg
    new = {"means": means, **_factor_params(cov, covariance, dtype)}
    if covariance not in ("tied",):
      shape_alive = alive.reshape((k,) + (1,) * (new["log_prec_diag"].ndim - 1))
      new["log_prec_diag"] = jnp.where(shape_alive, new["log_prec_diag"],
                                       old["log_prec_diag"])
      if covariance == "full":
        new["prec_tril"] = jnp.where(alive[:, None, None], new["prec_tril"], old["prec_tril"])
    pi = nk / n
    new["logits"] = jnp.log(jnp.maximum(pi, tiny))
    return new

  def m_step(params, state, stats):
    return {"model": m_from_stats(params["model"], stats)}, state

  def placeholder(dtype):
    """Parameters of the right shapes (overwritten by the initial M-step)."""
    p = {"logits": jnp.zeros((k,), dtype)}
    if bernoulli:
      p["logit_p"] = jnp.zeros((k, d), dtype)
      return p
    p["means"] = jnp.zeros((k, d), dtype)
    if covariance == "full":
      p.update(prec_tril=jnp.zeros((k, d, d), dtype), log_prec_diag=jnp.zeros((k, d), dtype))
    elif covariance == "tied":
      p.update(prec_tril=jnp.zeros((d, d), dtype), log_prec_diag=jnp.zeros((d,), dtype))
    elif covariance == "diag":
      p["log_prec_diag"] = jnp.zeros((k, d), dtype)
    else:
      p["log_prec_diag"] = jnp.zeros((k,), dtype)
    return p

  def init(rng, batch):
    x = flat(batch)
    dtype = x.dtype
    w = batch.get(spec_lib.WEIGHT, jnp.ones(x.shape[:1], dtype)).astype(dtype)
    if init_kind == "random":
      resp = jax.random.dirichlet(rng, jnp.ones((k,), dtype), (x.shape[0],)).astype(dtype)
    else:
      centers = kmeans(rng, x, w, k, kmeans_iters)
      labels = jnp.argmin(_sq_dist(x, centers), axis=-1)
      resp = jax.nn.one_hot(labels, k, dtype=dtype)
    old = placeholder(dtype)
    center = None if bernoulli else jnp.sum(x * w[:, None], 0) / jnp.sum(w) * jnp.ones((k, 1),
                                                                                        dtype)
    stats = e_stats(resp, x, w, center)
    stats["count"] = jnp.sum(w)
    if not bernoulli:
      old["means"] = center
      old.update(_factor_params(_var_like(x, w, covariance, k, reg), covariance, dtype))
    return {"model": m_from_stats(old, stats)}, {}

  def loss(player, params, state, batch, rng):
    del player, rng
    return -jnp.mean(log_prob(params, flat(batch))), (state, {})

  def eval_fn(params, state, batch, rng):
    del state, rng
    return {"log_px": log_prob(params, flat(batch))}

  def sample(params, state, rng, n):
    del state
    p = params["model"]
    r_k, r_x = jax.random.split(rng)
    comp = jax.random.categorical(r_k, p["logits"], shape=(n,))
    dtype = p["logits"].dtype
    if bernoulli:
      x = jax.random.bernoulli(r_x, jax.nn.sigmoid(p["logit_p"][comp])).astype(jnp.float32)
    else:
      eps = jax.random.normal(r_x, (n, d), dtype)
      u = _prec_factor(p, covariance, k, d, reg)[comp]
      if u.ndim == 3:    # x = mu + U^-1 eps
        y = jax.scipy.linalg.solve_triangular(u, eps[..., None], lower=True)[..., 0]
      else:
        y = eps / u
      x = p["means"][comp] + y
      if spec[field].modality == "image":
        x = jnp.clip(x, 0.0, 1.0)
    return x.reshape((n,) + shape).astype(jnp.float32)

  what = ("binary pixels" if bernoulli else
          "pixels on the variant's scale" if spec[field].modality == "image" else "points")
  return types.Family(
      players=("model",), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      eval_units={"log_px": f"nats per example ({d} {what}), exact"},
      sample_field=field, em=types.EM(e_step=e_step, m_step=m_step))


def _var_like(x, w, covariance: str, k: int, reg: float):
  """The data's (co)variance in the covariance type's shape (for initial placeholders)."""
  mean = jnp.sum(x * w[:, None], 0) / jnp.sum(w)
  diff = x - mean
  var = jnp.sum(w[:, None] * diff * diff, 0) / jnp.sum(w) + max(reg, 1e-6)
  d = x.shape[1]
  if covariance == "full":
    return jnp.broadcast_to(jnp.diag(var), (k, d, d))
  if covariance == "tied":
    return jnp.diag(var)
  if covariance == "diag":
    return jnp.broadcast_to(var, (k, d))
  return jnp.broadcast_to(var.mean(), (k,))


def _sq_dist(x, c):
  """|x_n - c_k|^2: f[N, K]."""
  return (jnp.sum(x * x, -1)[:, None] - 2 * x @ c.T + jnp.sum(c * c, -1)[None])


def kmeans(rng, x, w, k: int, iters: int):
  """k-means++ seeding then `iters` Lloyd iterations (weights w: f[N]): centers f[K, D].

  Seeding (Arthur & Vassilvitskii 2007): the first center is drawn in
  proportion to w, each next one in proportion to w * (squared distance to the
  nearest center so far). Both loops are lax.scan / fori_loop.
  """
  n = x.shape[0]
  keys = jax.random.split(rng, k)
  first = x[jax.random.categorical(keys[0], jnp.log(w))]
  d2 = jnp.maximum(jnp.sum((x - first) ** 2, -1), 0.0)
  centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)

  def seed(carry, i):
    centers, d2 = carry
    logits = jnp.log(jnp.maximum(w * d2, 0.0))
    logits = jnp.where(jnp.all(w * d2 <= 0), jnp.log(w), logits)   # all points are centers
    c = x[jax.random.categorical(keys[i], logits)]
    d2 = jnp.minimum(d2, jnp.maximum(jnp.sum((x - c) ** 2, -1), 0.0))
    return (centers.at[i].set(c), d2), None
  (centers, _), _ = jax.lax.scan(seed, (centers, d2), jnp.arange(1, k))

  def lloyd(_, centers):
    labels = jnp.argmin(_sq_dist(x, centers), -1)
    onehot = jax.nn.one_hot(labels, k, dtype=x.dtype) * w[:, None]
    counts = onehot.sum(0)
    new = (onehot.T @ x) / jnp.maximum(counts, 1e-12)[:, None]
    return jnp.where((counts > 0)[:, None], new, centers)
  del n
  return jax.lax.fori_loop(0, iters, lloyd, centers)


def to_sklearn(params: dict, covariance: str, reg_covar: float = 1e-6):
  """A fitted-looking sklearn.mixture.GaussianMixture holding these parameters.

  For parity tests and benchmarks against scikit-learn (imported lazily; not a
  dependency of the family). sklearn's precisions_cholesky_ is lower
  triangular with precision = L L^T, so L = chol(U^T U).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from sklearn.mixture import GaussianMixture  # pylint: disable=g-import-not-at-top
  p = {n: np.asarray(v) for n, v in params["model"].items()}
  k, d = p["means"].shape
  g = GaussianMixture(k, covariance_type=covariance, reg_covar=reg_covar)
  g.weights_ = np.exp(p["logits"] - np.logaddexp.reduce(p["logits"]))
  g.means_ = p["means"]
  if covariance in ("full", "tied"):
    u = np.where(np.tril(np.ones((d, d)), -1) > 0, p["prec_tril"], 0.0)
    u = u + np.exp(p["log_prec_diag"])[..., None, :] * np.eye(d)
    prec = np.swapaxes(u, -1, -2) @ u
    g.precisions_cholesky_ = np.linalg.cholesky(prec)
    g.covariances_ = np.linalg.inv(prec)
  else:
    g.precisions_cholesky_ = np.exp(p["log_prec_diag"])
    g.covariances_ = 1.0 / g.precisions_cholesky_ ** 2
  g.n_features_in_ = d
  return g
