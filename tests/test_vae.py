"""VAE estimators against the exact marginal of a linear-Gaussian VAE; class conditioning.

With `hidden=()` and a Gaussian decoder the VAE is probabilistic PCA:
p(x) = N(b, W W^T + s^2 I). With W's columns orthogonal the true posterior is
a diagonal Gaussian, linear in x, so the encoder can represent it exactly.
The conditional VAE (model.num_classes) is checked for its input shapes, its
class-marginal likelihood and, after brief training on digits, for samples of
the class it is asked for; with num_classes=0 the parameters must be those of
the label-free networks.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from scipy import stats

from gen_jax import config_lib, errors
from gen_jax.data import sources
from gen_jax.data import spec as spec_lib
from gen_jax.models import vae
from gen_jax.nn import layers

pytestmark = pytest.mark.usefixtures("cheap_compiles")   # tiny models: compiling is the cost

D, L, SIGMA = 5, 2, 0.5


def _config(objective="iwae", likelihood="gaussian", variant="dequantized_8bit", **model):
  c = config_lib.base()
  c.family = "vae"
  c.model = ml_collections.ConfigDict(dict(
      arch="mlp", hidden=(), latent_dim=L, activation="tanh", likelihood=likelihood,
      objective=objective, k=1, beta=1.0))
  c.model.update(model)
  c.data.variant = variant
  return c


def _linear_gaussian(perturb=0.0, seed=0):
  """(family, params, W, b, exact log p(x) function) for a PPCA model."""
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(D, L)))
  w = q * np.array([2.0, 1.0])                  # orthogonal columns
  b = rng.normal(size=D)
  post_var = 1.0 / (1.0 + (w * w).sum(0) / SIGMA**2)             # [L]
  a = post_var[:, None] * w.T / SIGMA**2                          # mu = a (x - b)
  family = vae.make(_config(), spec_lib.example((1, D, 1)))
  params, _ = jax.jit(family.init)(jax.random.key(0), {"x": jnp.zeros((1, 1, D, 1))})
  enc_kernel = np.zeros((D, 2 * L))
  enc_kernel[:, :L] = a.T + perturb * rng.normal(size=(D, L))
  enc_bias = np.concatenate([-a @ b, 0.5 * np.log(post_var) + perturb])
  params = {"model": {
      "encoder": {"MLP_0": {"dense_0": {"kernel": enc_kernel, "bias": enc_bias}}},
      "decoder": {"MLP_0": {"dense_0": {"kernel": w.T, "bias": b}},
                  "log_sigma": np.full((1, D, 1), np.log(SIGMA))}}}
  params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params)
  cov = w @ w.T + SIGMA**2 * np.eye(D)

  def exact(x):
    return stats.multivariate_normal(b, cov).logpdf(np.asarray(x).reshape(len(x), D))

  def sample(n):
    return jnp.asarray(rng.multivariate_normal(b, cov, size=n).reshape(n, 1, D, 1),
                       jnp.float32)
  return family, params, exact, sample


def test_params_tree_is_the_one_the_model_builds():
  family, params, _, _ = _linear_gaussian()
  init, _ = jax.jit(family.init)(jax.random.key(1), {"x": jnp.zeros((1, 1, D, 1))})
  assert jax.tree.structure(init) == jax.tree.structure(params)
  jax.tree.map(lambda a, b: np.testing.assert_equal(a.shape, b.shape), init, params)


def test_exact_posterior_makes_every_bound_exact():
  family, params, exact, sample = _linear_gaussian()
  x = sample(64)
  out = family.eval_fn(params, {}, {"x": x}, jax.random.key(0), k=20, chunk=10)
  np.testing.assert_allclose(-out["nll_iwae"], exact(x), atol=2e-4)
  np.testing.assert_allclose(-out["neg_elbo"], exact(x), atol=2e-4)


def test_iwae_bound_increases_with_k_and_approaches_exact():
  family, params, exact, sample = _linear_gaussian(perturb=0.1)
  x = sample(128)
  true_ll = exact(x).mean()
  bounds = []
  for k in (1, 10, 100, 1000, 5000):
    out = family.eval_fn(params, {}, {"x": x}, jax.random.key(k), k=k, chunk=min(k, 500))
    bounds.append(float(-out["nll_iwae"].mean()))
  gaps = true_ll - np.array(bounds)
  assert np.all(np.diff(bounds[:4]) > 0), bounds
  assert gaps[0] > 0.5, gaps                  # the perturbed posterior is visibly loose
  assert np.all(gaps > -0.01), gaps           # a bound in expectation
  assert abs(gaps[-1]) < 0.01, gaps           # k=5000 (Burda's protocol) is near exact


def test_elbo_never_exceeds_iwae_estimate_from_the_same_samples():
  family, params, _, sample = _linear_gaussian(perturb=0.4)
  out = family.eval_fn(params, {}, {"x": sample(128)}, jax.random.key(3), k=50, chunk=50)
  assert np.all(-out["neg_elbo"] <= -out["nll_iwae"] + 1e-5)


def test_training_elbo_with_closed_form_kl_matches_sampled_elbo():
  family, params, exact, sample = _linear_gaussian(perturb=0.3)
  fam_elbo = vae.make(_config(objective="elbo"), spec_lib.example((1, D, 1)))
  x = sample(64)
  losses = jax.vmap(lambda r: fam_elbo.loss("model", params, {}, {"x": x}, r)[0])(
      jax.random.split(jax.random.key(0), 2000))
  sampled = family.eval_fn(params, {}, {"x": x}, jax.random.key(1), k=2000, chunk=500)
  np.testing.assert_allclose(losses.mean(), sampled["neg_elbo"].mean(), rtol=2e-3)


def test_iwae_training_loss_is_the_k_sample_bound():
  family_k = vae.make(_config(objective="iwae", k=7), spec_lib.example((1, D, 1)))
  _, params, _, sample = _linear_gaussian(perturb=0.4)
  x = sample(8)
  loss, (_, metrics) = family_k.loss("model", params, {}, {"x": x}, jax.random.key(5))
  np.testing.assert_allclose(loss, -metrics["iwae_bound"], rtol=1e-6)
  assert metrics["iwae_bound"] >= metrics["elbo"]


def test_beta_vae_weights_the_kl_term():
  _, params, _, sample = _linear_gaussian(perturb=0.2)
  x, r = sample(16), jax.random.key(0)
  spec = spec_lib.example((1, D, 1))
  elbo = vae.make(_config(objective="elbo"), spec).loss("model", params, {}, {"x": x}, r)
  beta = vae.make(_config(objective="beta", beta=4.0), spec_lib.example((1, D, 1))).loss(
      "model", params, {}, {"x": x}, r)
  kl = elbo[1][1]["kl"]
  np.testing.assert_allclose(beta[0] - elbo[0], 3.0 * kl, rtol=1e-5)


@pytest.mark.parametrize("arch,likelihood,variant", [
    ("mlp", "bernoulli", "binarized_dynamic"),
    ("conv", "bernoulli", "binarized_static"),
    ("conv", "logistic", "grayscale"),
])
def test_architectures_give_finite_losses_and_image_samples(arch, likelihood, variant):
  hidden = (8, 8) if arch == "conv" else (16,)
  family = vae.make(_config("iwae", likelihood, variant, arch=arch, hidden=hidden, k=3),
                    spec_lib.example((8, 8, 1)))
  x = (jax.random.uniform(jax.random.key(0), (4, 8, 8, 1)) > 0.5).astype(jnp.float32)
  params, state = jax.jit(family.init)(jax.random.key(1), {"x": x})
  loss, _ = family.loss("model", params, state, {"x": x}, jax.random.key(2))
  assert np.isfinite(loss)
  s = family.sample(params, state, jax.random.key(3), 5)
  assert s.shape == (5, 8, 8, 1) and float(s.min()) >= 0 and float(s.max()) <= 1


@pytest.mark.parametrize("model,variant,match", [
    (dict(likelihood="bernoulli"), "grayscale", "needs binary data"),
    (dict(likelihood="logistic"), "binarized_dynamic", "needs data.variant 'grayscale'"),
    (dict(objective="iwea"), "dequantized_8bit", "valid choices: beta, elbo, iwae"),
    (dict(k=0), "dequantized_8bit", "model.k must be >= 1"),
])
def test_bad_model_configs_are_rejected(model, variant, match):
  with pytest.raises(errors.ConfigError, match=match):
    vae.make(_config(variant=variant, **model), spec_lib.example((8, 8, 1)))


class _UnconditionalEncoder(nn.Module):
  """The encoder as it was before class conditioning: the reference for num_classes=0."""
  hidden: tuple
  latent_dim: int

  @nn.compact
  def __call__(self, x):
    return layers.MLP(tuple(self.hidden) + (2 * self.latent_dim,), jnp.tanh)(
        x.reshape(x.shape[0], -1))


class _UnconditionalDecoder(nn.Module):
  hidden: tuple
  dims: int

  @nn.compact
  def __call__(self, z):
    return layers.MLP(tuple(reversed(self.hidden)) + (self.dims,), jnp.tanh)(z)


def test_unconditional_params_are_those_of_the_label_free_networks():
  family = vae.make(_config("elbo", "bernoulli", "binarized_dynamic", hidden=(16, 8),
                            latent_dim=3), spec_lib.example((8, 8, 1)))
  x = jnp.zeros((4, 8, 8, 1))
  params, _ = jax.jit(family.init)(jax.random.key(1), {"x": x})
  r_enc, r_dec = jax.random.split(jax.random.key(1))
  want = {"model": {
      "encoder": _UnconditionalEncoder((16, 8), 3).init(r_enc, x)["params"],
      "decoder": _UnconditionalDecoder((16, 8), 64).init(r_dec, jnp.zeros((1, 3)))["params"]}}
  assert jax.tree.structure(params) == jax.tree.structure(want)
  jax.tree.map(np.testing.assert_array_equal, params, want)
  assert family.encode is not None and family.decode is not None


def _cvae_config(**model):
  c = _config("elbo", "bernoulli", "binarized_dynamic", num_classes=10, **model)
  c.data.labels = True
  return c


@pytest.mark.parametrize("arch,hidden", [("mlp", (16,)), ("conv", (4, 4))])
def test_conditional_networks_take_the_one_hot_label(arch, hidden):
  family = vae.make(_cvae_config(arch=arch, hidden=hidden, latent_dim=3),
                    spec_lib.example((8, 8, 1)))
  batch = {"x": jnp.zeros((4, 8, 8, 1)), "y": jnp.arange(4)}
  params, _ = jax.jit(family.init)(jax.random.key(0), batch)
  p = params["model"]
  if arch == "mlp":
    assert p["encoder"]["MLP_0"]["dense_0"]["kernel"].shape == (64 + 10, 16)
    assert p["decoder"]["MLP_0"]["dense_0"]["kernel"].shape == (3 + 10, 16)
  else:
    assert p["encoder"]["ConvEncoder_0"]["conv_0"]["kernel"].shape == (3, 3, 1 + 10, 4)
    assert p["decoder"]["ConvDecoder_0"]["stem"]["kernel"].shape == (3 + 10, 2 * 2 * 4)
  assert family.encode is None and family.decode is None   # their maps need y
  assert np.isfinite(family.loss("model", params, {}, batch, jax.random.key(1))[0])


def test_conditional_likelihood_is_the_uniform_class_mixture_of_the_given_y_estimates():
  family = vae.make(_cvae_config(hidden=(16,), latent_dim=3), spec_lib.example((8, 8, 1)))
  x = (jax.random.uniform(jax.random.key(0), (6, 8, 8, 1)) > 0.5).astype(jnp.float32)
  params, _ = jax.jit(family.init)(jax.random.key(1), {"x": x, "y": jnp.zeros(6, jnp.int32)})
  fn = jax.jit(lambda b: family.eval_fn(params, {}, b, jax.random.key(2), k=20, chunk=10))
  per_class = [fn({"x": x, "y": jnp.full(6, c)}) for c in range(10)]
  given = np.stack([o["nll_iwae_given_y"] for o in per_class])
  elbos = np.stack([o["neg_elbo_given_y"] for o in per_class])
  out = fn({"x": x})
  assert "nll_iwae_given_y" not in out            # no labels: the marginal only
  want = -(np.logaddexp.reduce(-given.astype(np.float64), axis=0) - np.log(10))
  np.testing.assert_allclose(out["nll_iwae"], want, rtol=1e-5)
  np.testing.assert_allclose(out["neg_elbo"], elbos.mean(0), rtol=1e-5)
  assert np.all(out["neg_elbo"] >= out["nll_iwae"] - 1e-4)   # Jensen: -mean ELBO bounds it


def test_labels_are_refused_by_the_unconditional_sampler_and_need_data_labels():
  family = vae.make(_config("elbo", "bernoulli", "binarized_dynamic", hidden=(8,)),
                    spec_lib.example((8, 8, 1)))
  params, _ = jax.jit(family.init)(jax.random.key(0), {"x": jnp.zeros((2, 8, 8, 1))})
  with pytest.raises(errors.ConfigError, match="needs a class-conditional VAE"):
    family.sample(params, {}, jax.random.key(1), 3, labels=jnp.arange(3))
  with pytest.raises(errors.ConfigError, match="num_classes=10 needs data.labels = True"):
    vae.make(_config("elbo", "bernoulli", "binarized_dynamic", num_classes=10),
             spec_lib.example((8, 8, 1)))


def test_briefly_trained_cvae_samples_the_class_it_is_given():
  """Samples given label c are nearest (among the 10 class-mean digits) to digit c."""
  split = sources.load("digits", "train")
  x = jnp.asarray((split.x > 127).astype(np.float32))          # binarized 8x8 digits
  y = jnp.asarray(split.y)
  family = vae.make(_cvae_config(hidden=(64,), latent_dim=2), spec_lib.example((8, 8, 1)))
  params, _ = jax.jit(family.init)(jax.random.key(0), {"x": x[:100], "y": y[:100]})
  opt = optax.adam(3e-3)

  def step(carry, rng):
    p, o = carry
    idx = jax.random.choice(rng, len(x), (100,), replace=False)
    g = jax.grad(lambda q: family.loss("model", q, {}, {"x": x[idx], "y": y[idx]}, rng)[0])(p)
    u, o = opt.update(g, o)
    return (optax.apply_updates(p, u), o), None

  (params, _), _ = jax.jit(lambda c, r: jax.lax.scan(step, c, r))(
      (params, opt.init(params)), jax.random.split(jax.random.key(1), 600))
  labels = jnp.repeat(jnp.arange(10), 30)
  s = np.asarray(family.sample(params, {}, jax.random.key(2), 300, labels=labels))
  centroids = np.stack([np.asarray(x)[np.asarray(y) == c].mean(0) for c in range(10)])
  dist = ((s[:, None] - centroids[None]) ** 2).reshape(300, 10, -1).sum(-1)
  accuracy = (dist.argmin(1) == np.asarray(labels)).mean()
  assert accuracy > 0.8, accuracy
  # The same z under another label gives another image: the label is used.
  same_z = np.asarray(family.sample(params, {}, jax.random.key(2), 300, labels=(labels + 1) % 10))
  assert np.abs(same_z - s).mean() > 0.1
