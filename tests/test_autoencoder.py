"""Autoencoders: the online-EM latent mixture against scikit-learn and the closed form,
clean targets under every corruption, denoising on digits, shapes and config errors."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from gen_jax import config_lib, errors
from gen_jax.data import corruptions, sources, variants
from gen_jax.data import spec as spec_lib
from gen_jax.models import autoencoder
from gen_jax.nn import dists

pytestmark = pytest.mark.usefixtures("cheap_compiles")   # tiny models: compiling is the cost

FLOOR = 1e-4


def _config(variant="grayscale", batch_size=100, kind="none", level=0.0, level_max=0.0,
            **model):
  c = config_lib.base()
  c.family = "autoencoder"
  c.data.update(name="digits", variant=variant, batch_size=batch_size)
  c.model = ml_collections.ConfigDict(dict(
      arch="mlp", hidden=(32,), latent=4, activation="tanh", loss="bce",
      corruption=dict(kind=kind, level=level, level_max=level_max),
      latent_components=3, latent_ema=0.99, latent_fit_start_steps=0,
      latent_var_floor=FLOOR, latent_kmeans_iters=10))
  c.model.update(model)
  return c


def _family(shape=(8, 8, 1), **kw):
  return autoencoder.make(_config(**kw), spec_lib.example(shape))


def _mixture(k=3, d=3, ema=0.99, start=0):
  return autoencoder.LatentMixture(k, d, ema, start, FLOOR, 10)


def _blobs(n=600, d=3, k=3, seed=0):
  """Codes from a well-separated diagonal mixture: f32[n, d]."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(k, d)) * 5
  scales = rng.uniform(0.3, 1.5, size=(k, d))
  comp = rng.choice(k, n, p=[0.5, 0.3, 0.2])
  return (centers[comp] + rng.normal(size=(n, d)) * scales[comp]).astype(np.float32)


def _std_normal_log_prob(z):
  return np.sum(-0.5 * z * z - 0.5 * np.log(2 * np.pi), axis=-1)


def test_m_step_from_exact_statistics_is_the_closed_form():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(50, 3)).astype(np.float32) * 2 + 1
  resp = rng.dirichlet(np.ones(4), size=50).astype(np.float32)
  mix = _mixture(k=4)

  @jax.jit
  def fit(resp, z):
    stats = mix.suff_stats(resp, z)
    return mix.m_step(stats), mix.log_prob({"stats": stats}, z)
  p, log_prob = fit(resp, z)
  nk = resp.sum(0)
  mu = resp.T @ z / nk[:, None]
  var = np.stack([(resp[:, k:k + 1] * (z - mu[k]) ** 2).sum(0) / nk[k] for k in range(4)])
  np.testing.assert_allclose(np.exp(p["logits"]), nk / 50, rtol=1e-5)
  np.testing.assert_allclose(p["means"], mu, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.exp(-2 * p["log_prec_diag"]), var + FLOOR, rtol=1e-4)
  # The density is the diagonal-Gaussian mixture's, term by term.
  ref = np.log(np.sum([nk[k] / 50 * np.prod(
      np.exp(-(z - mu[k]) ** 2 / (2 * (var[k] + FLOOR))) / np.sqrt(2 * np.pi * (var[k] + FLOOR)),
      axis=1) for k in range(4)], axis=0))
  np.testing.assert_allclose(log_prob, ref, rtol=1e-4, atol=1e-4)


def test_mixture_is_the_standard_normal_until_the_fit_starts():
  mix = _mixture(start=5)
  state = mix.init_state()
  z = _blobs(40)
  update, log_prob = jax.jit(mix.update), jax.jit(mix.log_prob)
  np.testing.assert_allclose(log_prob(state, z), _std_normal_log_prob(z), rtol=1e-4, atol=1e-4)
  for i in range(5):   # waiting: statistics untouched, steps counted
    state = update(state, z, jax.random.key(i))
  assert int(state["step"]) == 5
  np.testing.assert_allclose(log_prob(state, z), _std_normal_log_prob(z), rtol=1e-4, atol=1e-4)
  state = update(state, z, jax.random.key(9))   # the start step seeds by k-means
  assert float(log_prob(state, z).mean()) > _std_normal_log_prob(z).mean() + 5


@pytest.mark.parametrize("batch,ema,steps,tol", [(600, 0.9, 400, 2e-4), (100, 0.99, 3000, 5e-3)])
def test_online_em_on_fixed_codes_matches_sklearn(batch, ema, steps, tol):
  """Full batches: online EM's fixed point is batch EM's; minibatches: near it."""
  codes = _blobs()
  mix = _mixture(ema=ema)

  @jax.jit
  def online_em(codes):
    """`steps` updates on minibatches of the fixed codes: (mean log p, mixture parameters)."""
    def body(state, r):
      r_idx, r_fit = jax.random.split(r)
      idx = jax.random.choice(r_idx, len(codes), (batch,), replace=False)
      return mix.update(state, codes[idx], r_fit), None
    state, _ = jax.lax.scan(body, mix.init_state(), jax.random.split(jax.random.key(0), steps))
    return mix.log_prob(state, codes).mean(), mix.m_step(state["stats"])
  ll, p = online_em(codes)
  ref = GaussianMixture(3, covariance_type="diag", reg_covar=FLOOR, tol=1e-10, max_iter=2000,
                        n_init=3, random_state=0).fit(codes)
  assert abs(float(ll) - ref.score(codes)) < tol, (float(ll), ref.score(codes))
  order, ref_order = np.argsort(p["means"][:, 0]), np.argsort(ref.means_[:, 0])
  np.testing.assert_allclose(np.exp(p["logits"])[order], ref.weights_[ref_order], atol=20 * tol)
  np.testing.assert_allclose(p["means"][order], ref.means_[ref_order], atol=50 * tol)


KINDS = [("gaussian", 0.3, 0.0), ("gaussian", 0.1, 0.5), ("masking", 0.25, 0.0),
         ("salt_pepper", 0.2, 0.0), ("downsample", 2, 0.0), ("mutate", 0.2, 0.0)]


@pytest.mark.parametrize("kind,level,level_max", KINDS)
def test_corruption_changes_the_input_but_the_target_stays_clean(kind, level, level_max):
  fam = _family(kind=kind, level=level, level_max=level_max)
  x = jnp.asarray(sources.load("digits", "train").x[:16], jnp.float32) / 255.0
  params, state = jax.jit(fam.init)(jax.random.key(0), {"x": x})
  # Larger weights than at init, so the decoder's output varies and the loss is sensitive
  # to which target it is given.
  params = jax.tree.map(lambda a: 3.0 * a, params)
  rng = jax.random.key(3)
  loss, _ = jax.jit(fam.loss, static_argnums=0)("model", params, state, {"x": x}, rng)
  p = params["model"]

  @jax.jit
  def bce_fn(inp, target):
    z = fam.encode(params, state, inp)
    logits = autoencoder.vae.Decoder("mlp", (32,), (8, 8, 1), "tanh", 1).apply(
        {"params": p["decoder"]}, z)
    return -dists.bernoulli_log_prob(logits, target).mean()

  def bce(inp, target):
    return float(bce_fn(inp, target))

  r_noise = jax.random.split(rng)[0]
  if level_max:    # one sigma per example in [level, level_max]
    r_sigma, r_eps = jax.random.split(r_noise)
    sigma = jax.random.uniform(r_sigma, (16, 1, 1, 1), minval=level, maxval=level_max)
    x_c = jnp.clip(x + sigma * jax.random.normal(r_eps, x.shape), 0.0, 1.0)
  else:
    x_c = corruptions.corrupt(kind, x, r_noise, level)
  assert float(jnp.abs(x_c - x).mean()) > 0.01                    # the input changes
  np.testing.assert_allclose(float(loss), bce(x_c, x), rtol=1e-5)  # ... the target does not
  assert abs(bce(x_c, x_c) - bce(x_c, x)) > 1e-3 * bce(x_c, x)   # 100x the tolerance above
  assert abs(bce(x, x) - float(loss)) > 1e-3 * float(loss)


def test_per_example_noise_levels_span_the_range():
  fam = _family(kind="gaussian", level=0.05, level_max=0.15)
  x = jnp.full((400, 8, 8, 1), 0.5)
  params, state = jax.jit(fam.init)(jax.random.key(0), {"x": x})
  out = jax.jit(fam.eval_fn)(params, state, {"x": x}, jax.random.key(1))
  sigma = np.sqrt(np.asarray(out["corrupted_input_mse"]))   # per-example noise std
  assert 0.03 < sigma.min() < 0.065 and 0.135 < sigma.max() < 0.17, (sigma.min(), sigma.max())
  assert abs(np.mean(sigma ** 2) - (0.05**2 + 0.05 * 0.15 + 0.15**2) / 3) < 5e-4


def test_latent_mixture_is_fitted_to_the_codes_of_the_clean_images():
  # Masking with probability 1 blanks every input: its codes are all one point.
  fam = _family(kind="masking", level=1.0, latent_fit_start_steps=0)
  x = jnp.asarray(sources.load("digits", "train").x[:32], jnp.float32) / 255.0
  params, state = jax.jit(fam.init)(jax.random.key(0), {"x": x})
  rng = jax.random.key(1)
  _, (new_state, _) = jax.jit(fam.loss, static_argnums=0)("model", params, state, {"x": x}, rng)
  mix = _mixture(k=3, d=4)
  r_fit = jax.random.split(rng)[1]
  encode, update = jax.jit(fam.encode), jax.jit(mix.update)
  clean = update(state, encode(params, state, x), r_fit)
  blank = update(state, encode(params, state, jnp.zeros_like(x)), r_fit)
  assert int(new_state["step"]) == 1
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               new_state["stats"], clean["stats"])
  assert not np.allclose(new_state["stats"]["s1"], blank["stats"]["s1"], atol=1e-4)


def _train(fam, x, steps, batch, lr=3e-3):
  import optax  # pylint: disable=g-import-not-at-top
  tx = optax.adam(lr)
  params, state = jax.jit(fam.init)(jax.random.key(0), {"x": x[:batch]})

  def body(carry, r):
    p, opt, s = carry
    r_idx, r_loss = jax.random.split(r)
    xb = x[jax.random.choice(r_idx, len(x), (batch,), replace=False)]
    (_, (s, _)), g = jax.value_and_grad(
        lambda q: fam.loss("model", {"model": q}, s, {"x": xb}, r_loss), has_aux=True)(p)
    u, opt = tx.update(g, opt, p)
    return (optax.apply_updates(p, u), opt, s), None
  carry = (params["model"], tx.init(params["model"]), state)
  (p, _, state), _ = jax.jit(lambda c, rs: jax.lax.scan(body, c, rs))(
      carry, jax.random.split(jax.random.key(1), steps))
  return {"model": p}, state


def test_denoising_autoencoder_reconstructs_noisy_digits_better_than_the_noisy_input():
  train, test = sources.load("digits", "train"), sources.load("digits", "test")
  x = variants.apply("grayscale", jnp.asarray(train.x), None)
  x_test = variants.apply("grayscale", jnp.asarray(test.x), None)
  fam = _family(kind="gaussian", level=0.3, hidden=(128,), latent=16, activation="relu",
                latent_components=5, latent_fit_start_steps=100)
  params, state = _train(fam, x, steps=400, batch=100)
  assert int(state["step"]) == 400
  out = jax.jit(fam.eval_fn)(params, state, {"x": x_test}, jax.random.key(7))
  noisy, denoised = float(out["corrupted_input_mse"].mean()), float(
      out["recon_mse_corrupted"].mean())
  assert denoised < 0.7 * noisy, (denoised, noisy)
  assert float(out["recon_mse"].mean()) < noisy
  # The fitted code mixture explains the test codes better than the untrained N(0, I).
  z = np.asarray(jax.jit(fam.encode)(params, state, x_test))
  fitted = float(out["latent_nll"].mean())
  assert fitted < -_std_normal_log_prob(z).mean() - 1.0
  assert np.isfinite(fitted)


@pytest.mark.parametrize("arch,hidden,shape", [("mlp", (16, 16), (8, 8, 1)),
                                               ("conv", (4, 8), (8, 8, 1)),
                                               ("conv", (4, 8), (28, 28, 1))])
def test_encode_decode_shapes_and_samples_in_unit_range(arch, hidden, shape):
  fam = _family(shape, arch=arch, hidden=hidden, loss="mse", kind="masking", level=0.25)
  x = jax.random.uniform(jax.random.key(0), (6,) + shape)
  params, state = jax.jit(fam.init)(jax.random.key(1), {"x": x})
  z = jax.jit(fam.encode)(params, state, x)
  assert z.shape == (6, 4)
  rec = jax.jit(fam.decode)(params, state, z)
  assert rec.shape == (6,) + shape
  s = jax.jit(fam.sample, static_argnums=3)(params, state, jax.random.key(2), 5)
  assert s.shape == (5,) + shape and float(s.min()) >= 0 and float(s.max()) <= 1
  eval_fn = jax.jit(fam.eval_fn, static_argnames="corruption")
  out = eval_fn(params, state, {"x": x}, jax.random.key(3))
  assert set(out) == set(fam.eval_units) and all(v.shape == (6,) for v in out.values())
  np.testing.assert_allclose(out["recon_mse"], np.mean((np.asarray(rec) - np.asarray(x)) ** 2,
                                                       axis=(1, 2, 3)), rtol=1e-5)
  same = eval_fn(params, state, {"x": x}, jax.random.key(3), corruption="none")
  np.testing.assert_allclose(same["recon_mse_corrupted"], same["recon_mse"], rtol=1e-6)
  np.testing.assert_array_equal(same["corrupted_input_mse"], 0.0)


@pytest.mark.parametrize("kw,match", [
    (dict(arch="resnet"), r"unknown model.arch 'resnet'; valid choices: conv, mlp"),
    (dict(loss="l1"), r"unknown model.loss 'l1'; valid choices: bce, mse"),
    (dict(kind="blur"), r"unknown corruption 'blur'"),
    (dict(kind="masking", level=1.5), r"'masking' needs a probability in \[0, 1\]"),
    (dict(kind="gaussian", level=-0.1), r"'gaussian' needs sigma >= 0"),
    (dict(kind="downsample", level=3), r"by 3 needs H and W divisible by 3"),
    (dict(kind="masking", level=0.1, level_max=0.5), r"level_max=0.5 .* needs kind 'gaussian'"),
    (dict(latent_components=200), r"latent_components must be in \[1, data.batch_size=100\]"),
    (dict(arch="conv", hidden=(4, 4, 4, 4)), r"needs H and W divisible by 16"),
    (dict(variant="dequantized_8bit", latent_ema=1.0), r"latent_ema must be in \[0, 1\)"),
    (dict(variant="continuous"), r"data.variant must be one of grayscale"),
])
def test_bad_configs_fail_with_one_line(kw, match):
  with pytest.raises(errors.ConfigError, match=match) as info:
    _family(**kw)
  assert "\n" not in str(info.value)
