"""Flow models and likelihood accounting: inverses, log-dets, normalization, bits/dim."""
import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gen_jax import config_lib, errors
from gen_jax.data import spec as spec_lib
from gen_jax.data import variants
from gen_jax.evaluators import density
from gen_jax.models import accounting, flows

pytestmark = pytest.mark.usefixtures("cheap_compiles")


def _config(arch, variant, **model):
  c = config_lib.base()
  c.family = "flow"
  c.model = ml_collections.ConfigDict(dict(
      arch=arch, levels=2, steps=2, hidden=8 if arch in flows.IMAGE_ARCHS else (16,),
      scale_bound=2.0, actnorm=True, preprocess="none", logit_alpha=0.05, temperature=1.0,
      num_bins=4, tail_bound=3.0))
  c.model.update(model)
  c.data.variant = variant
  return c


def _perturbed(family, x, seed=0, noise=0.2):
  params, state = jax.jit(family.init)(jax.random.key(seed), {"x": x})
  rng = np.random.default_rng(seed + 1)
  params = jax.tree.map(
      lambda v: v + noise * rng.normal(size=v.shape).astype(np.float32), params)
  return params, state


# arch, data shape, variant, preprocess
MODELS = {
    "realnvp": ("realnvp", (4, 4, 1), "dequantized_8bit", "logit"),
    "glow": ("glow", (4, 4, 2), "dequantized_8bit", "center"),
    "maf": ("maf", (2, 2, 1), "dequantized_8bit", "logit"),
    "nsf": ("nsf", (2,), "continuous", "none"),
    "coupling": ("coupling", (3,), "continuous", "none"),
}


@pytest.fixture(params=sorted(MODELS), name="model", scope="module")
def _model(request):
  arch, shape, variant, pre = MODELS[request.param]
  family = flows.make(_model_config(arch, variant, pre), spec_lib.example(shape))
  rng = np.random.default_rng(0)
  if variant == "continuous":
    x = rng.normal(size=(3,) + shape).astype(np.float32)
  else:
    x = ((rng.integers(0, 256, (3,) + shape) + rng.random((3,) + shape)) / 256).astype(np.float32)
  # Small noise: ActNorm's init on 3 examples already scales a lot, and larger
  # random weights make the float32 inverse of the deep image flows ill-conditioned.
  params, state = _perturbed(family, x, noise=0.05)
  return family, params, state, x, pre, flows.build(_model_config(arch, variant, pre).model,
                                                    shape)


def _model_config(arch, variant, pre):
  # Glow with its own contracting coupling scale and learned split and top
  # priors, RealNVP with the tanh bound and the N(0, I) base.
  extra = dict(coupling_scale="sigmoid", learned_prior=True) if arch == "glow" else {}
  return _config(arch, variant, preprocess=pre, **extra)


def test_whole_model_inverts_and_log_prob_matches_change_of_variables(model):
  family, params, state, x, pre, flow = model
  variables = {"params": params["model"], **state}
  y, ld_pre = accounting.preprocess(x, pre, 0.05)
  y_in = y if isinstance(flow, flows.ImageFlow) else y.reshape(y.shape[0], -1)
  z, ld = flow.apply(variables, y_in)
  flat = np.asarray(y).reshape(y.shape[0], -1)
  assert z.shape == flat.shape
  y_back, ld_back = flow.apply(variables, z, reverse=True)
  np.testing.assert_allclose(np.asarray(y_back).reshape(flat.shape), flat, atol=2e-4, rtol=1e-4)
  np.testing.assert_allclose(ld_back, -ld, atol=2e-3)
  # log|det dz/dy| of the whole flow against the autodiff Jacobian, per example.
  one = lambda v: flow.apply(variables, v.reshape((1,) + y_in.shape[1:]))[0][0]
  jac = np.asarray(jax.jit(jax.vmap(jax.jacfwd(one)))(flat), np.float64)
  sign, want = np.linalg.slogdet(jac)
  assert np.all(sign != 0) and np.all(np.abs(want) > 1e-2)   # perturbed: not volume preserving
  np.testing.assert_allclose(ld, want, atol=2e-3)
  # eval_fn's nll = -(log N(z; 0, I) + flow log-det + preprocessing log-det).
  z64 = np.asarray(z, np.float64)
  want_nll = -(-0.5 * (z64 ** 2).sum(-1) - 0.5 * z64.shape[1] * math.log(2 * math.pi)
               + np.asarray(ld) + np.asarray(ld_pre))
  out = jax.jit(family.eval_fn)(params, state, {"x": x}, None)
  np.testing.assert_allclose(out["nll"], want_nll, rtol=1e-4, atol=1e-3)
  if "bpd" in out:
    d = flat.shape[1]
    np.testing.assert_allclose(out["bpd"], (want_nll + d * math.log(256)) / (d * math.log(2)),
                               rtol=1e-5)


def test_sampling_inverts_encoding_and_temperature_scales_the_latent(model):
  family, params, state, x, _, _ = model
  sample = jax.jit(family.sample, static_argnums=3)
  s1 = sample(params, state, jax.random.key(3), 4, temperature=1.0)
  assert s1.shape == (4,) + x.shape[1:] and np.all(np.isfinite(s1))
  if family.encode is not None:
    x_back = jax.jit(lambda p, v: family.decode(p, state, family.encode(p, state, v)))(params, x)
    np.testing.assert_allclose(x_back, x, atol=1e-4)
    # The same noise at T=0 decodes the latent origin for every sample.
    s0 = sample(params, state, jax.random.key(3), 4, temperature=1e-6)
    np.testing.assert_allclose(s0, np.broadcast_to(s0[:1], s0.shape), atol=1e-4)


def test_two_dimensional_flow_density_integrates_to_one():
  family = flows.make(_config("nsf", "continuous", steps=4, hidden=(16, 16), tail_bound=4.0,
                              actnorm=False), spec_lib.example((2,)))
  x = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
  # Moderate noise: much steeper random bins need a finer grid than 0.03 per cell.
  params, state = _perturbed(family, x, noise=0.1)
  points, area = density.grid_points(9.0, 600)
  nll = jax.jit(lambda p, v: family.eval_fn(p, state, {"x": v}, None)["nll"])(params, points)
  mass = float(np.exp(-np.asarray(nll, np.float64)).sum() * area)
  assert abs(mass - 1.0) < 2e-3, mass
  assert np.asarray(nll).std() > 0.1    # not the untrained Gaussian


def test_uniform_density_on_the_unit_cube_scores_exactly_8_bits_per_dim():
  for d in (1, 2, 784, 3072):
    assert accounting.bits_per_dim(jnp.zeros(()), d) == pytest.approx(8.0, abs=1e-6)
  # A density c on [0, 1)^D scores 8 - log2(c) / D bits/dim.
  assert accounting.bits_per_dim(jnp.asarray(-784 * math.log(2.0)), 784) == pytest.approx(7.0)


def test_dequantized_pixels_lie_in_their_cells_of_width_one_over_256():
  raw = jnp.asarray(np.arange(256, dtype=np.uint8).repeat(50).reshape(-1, 1))
  x = np.asarray(variants.apply("dequantized_8bit", raw, jax.random.key(0)))
  k = np.asarray(raw, np.float64)
  assert np.all(x >= k / 256) and np.all(x < (k + 1) / 256)


def test_logit_transform_log_det_matches_autodiff_and_inverts():
  alpha = 0.05
  x = ((np.arange(256) + 0.5) / 256).astype(np.float32).reshape(4, 8, 8, 1)
  y, ld = accounting.preprocess(x, "logit", alpha)
  diag = jax.vmap(jax.grad(lambda v: accounting.preprocess(v.reshape(1, 1), "logit",
                                                            alpha)[0].sum()))(x.reshape(-1))
  np.testing.assert_allclose(ld, np.log(np.asarray(diag, np.float64)).reshape(4, -1).sum(-1),
                             rtol=1e-5)
  np.testing.assert_allclose(accounting.postprocess(y, "logit", alpha), x, atol=1e-6)
  # By hand: dy/dx = (1 - 2a) / (s (1 - s)), s = a + (1 - 2a) x.
  s = alpha + (1 - 2 * alpha) * x.astype(np.float64)
  np.testing.assert_allclose(
      ld, np.log((1 - 2 * alpha) / (s * (1 - s))).reshape(4, -1).sum(-1), rtol=1e-5)


def test_one_dimensional_model_probabilities_of_the_256_levels_sum_to_at_most_one():
  """Exp(-nll) integrated over each pixel cell gives P(k); their sum is <= 1."""
  family = flows.make(_config("maf", "dequantized_8bit", preprocess="logit", logit_alpha=1e-3,
                              steps=2, actnorm=False), spec_lib.example((1, 1, 1)))
  grid = ((np.arange(256 * 16) + 0.5) / (256 * 16)).astype(np.float32).reshape(-1, 1, 1, 1)
  params, state = _perturbed(family, grid[:8])
  nll = np.asarray(jax.jit(family.eval_fn)(params, state, {"x": grid}, None)["nll"], np.float64)
  p_levels = np.exp(-nll).reshape(256, 16).mean(-1) / 256
  assert 0.98 < p_levels.sum() <= 1.0 + 1e-6


def test_bad_flow_configs_are_rejected():
  with pytest.raises(errors.ConfigError, match="dequantized_8bit"):
    flows.make(_config("realnvp", "grayscale"), spec_lib.example((4, 4, 1)))
  with pytest.raises(errors.ConfigError, match="needs images"):
    flows.make(_config("glow", "continuous"), spec_lib.example((2,)))
  with pytest.raises(errors.ConfigError, match="even"):
    flows.make(_config("glow", "dequantized_8bit", levels=3), spec_lib.example((28, 28, 1)))
  with pytest.raises(errors.ConfigError, match="model.preprocess"):
    flows.make(_config("maf", "dequantized_8bit", preprocess="log"), spec_lib.example((4, 4, 1)))
  with pytest.raises(errors.ConfigError, match="temperature"):
    flows.make(_config("nsf", "continuous", temperature=0.0), spec_lib.example((2,)))
  with pytest.raises(errors.ConfigError, match="model.dequantization"):
    flows.make(_config("glow", "dequantized_8bit", dequantization="learned"),
               spec_lib.example((4, 4, 2)))
  with pytest.raises(errors.ConfigError, match="needs 8-bit images"):
    flows.make(_config("maf", "dequantized_8bit", dequantization="variational"),
               spec_lib.example((2, 2, 1)))
  with pytest.raises(errors.ConfigError, match="model.coupling_scale"):
    flows.make(_config("glow", "dequantized_8bit", coupling_scale="exp"),
               spec_lib.example((4, 4, 2)))



def test_variational_dequantization_is_a_normalized_density_on_the_cell_and_a_bound():
  """For one 2x2 image k: q(u | k) integrates to 1 over the cell [0, 1)^4 (midpoint
  quadrature of its density, `reverse`), and the family's one-sample value, averaged,
  lies below log P(k) = log of p integrated over k's cell (Jensen)."""
  shape = (2, 2, 1)
  cfg = _config("glow", "dequantized_8bit", levels=1, steps=1, preprocess="logit",
                coupling_scale="sigmoid", learned_prior=True)
  uniform = flows.make(cfg, spec_lib.example(shape))
  cfg.model.update(dequantization="variational", deq_hidden=8, deq_steps=2)
  family = flows.make(cfg, spec_lib.example(shape))
  k = np.array([0, 3, 128, 255], np.float32).reshape((1,) + shape)
  rng = np.random.default_rng(0)   # ActNorm's init batch: varied images
  x_init = ((rng.integers(0, 256, (16,) + shape) + rng.random((16,) + shape)) / 256)
  params, state = _perturbed(family, x_init.astype(np.float32), noise=0.05)
  # Small enough that q stays smooth: the 16^4-point quadrature below then resolves it.
  deq = _perturbed(family, x_init.astype(np.float32), seed=2, noise=0.1)[0]["model"]
  params = {"model": {**params["model"], "dequantizer": deq["dequantizer"]}}
  flow_params = {"model": {n: v for n, v in params["model"].items() if n != "dequantizer"}}

  def cell(n):   # midpoints of an n^4 grid on [0, 1)^4, as f32[n^4, 2, 2, 1]
    g = np.stack(np.meshgrid(*[(np.arange(n) + 0.5) / n] * 4, indexing="ij"), -1)
    return g.reshape((-1,) + shape).astype(np.float32)
  u = cell(16)
  levels = np.broadcast_to(k / 255 - 0.5, u.shape)
  module = flows.build(cfg.model, shape)
  _, log_q = jax.jit(lambda v, l, u: module.apply(v, l, u, True, method=module.dequantize))(
      {"params": params["model"], **state}, levels, u)
  np.testing.assert_allclose(np.mean(np.exp(np.asarray(log_q, np.float64))), 1.0, atol=0.01)

  x_grid = (k + cell(6)) / 256
  log_p = -np.asarray(jax.jit(uniform.eval_fn)(flow_params, state, {"x": x_grid}, None)["nll"],
                      np.float64)
  d_log_256 = 4 * math.log(256)
  log_p_cell = np.log(np.mean(np.exp(log_p - log_p.max()))) + log_p.max() - d_log_256
  x = np.repeat((k + 0.5) / 256, 4096, 0)
  out = jax.jit(family.eval_fn)(params, state, {"x": x}, jax.random.key(5))
  elbo = -np.asarray(out["nll"], np.float64)
  assert elbo.std() > 0.05, "q is (nearly) p's own conditional: a weak test"
  assert elbo.mean() - d_log_256 < log_p_cell - 0.01
  np.testing.assert_allclose(out["bpd"], accounting.bits_per_dim(-elbo, 4), rtol=1e-5)

  # Importance weighting over K dequantizations (eval kwargs k) tightens the bound toward
  # -log P(k) - D ln 256 as K grows: with q, whose one-sample bound is loose here; with
  # uniform noise, under which this p is nearly flat on the cell (all within 1e-3 of it).
  exact = -(log_p_cell + d_log_256)   # nats per image, of x's density: -log P(k) - D ln 256

  def iw(fam, p, k_iw, copies):
    fn = jax.jit(functools.partial(fam.eval_fn, k=k_iw))
    out = fn(p, state, {"x": np.repeat((k + 0.5) / 256, copies, 0)}, jax.random.key(k_iw))
    np.testing.assert_allclose(out["bpd_iw"], accounting.bits_per_dim(out["nll_iw"], 4),
                               rtol=1e-5)
    return np.asarray(out["nll_iw"], np.float64).mean()
  one_q, q4, q64 = -elbo.mean(), iw(family, params, 4, 1024), iw(family, params, 64, 64)
  assert exact - 0.005 < q64 < q4 < one_q
  assert q64 - exact < 0.5 * (one_q - exact)   # most of the gap closed
  for k_iw in (2, 8):   # uniform noise: the quadrature's value, -log k counted
    assert abs(iw(uniform, flow_params, k_iw, 256) - exact) < 1e-3
  with pytest.raises(errors.ConfigError, match="kwargs.k"):
    flows.make(_config("maf", "continuous"), spec_lib.example((2,))).eval_fn(
        None, None, {"x": np.zeros((1, 2), np.float32)}, None, k=4)
