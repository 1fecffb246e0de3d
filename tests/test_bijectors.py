"""Bijectors: exact inverses, log-dets against autodiff Jacobians, layer-specific properties.

Couplings and MAF start at the identity (zero-initialized output layers), so
every generic check runs on parameters perturbed away from their init.

On CPU nearly all the time goes to compiling: eager JAX compiles each op once
per shape. So the tests share one image and one flat shape, build Jacobians
from jvps at the forward pass's own shapes, and jit the spline once.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn import bijectors as bj
from gen_jax.nn import masked

IMG = (2, 2, 4, 3)
FLAT = (3, 5)
BOUND = 2.0
N_SPLINE, K_SPLINE = 256, 6


pytestmark = pytest.mark.usefixtures("cheap_compiles")


def _x(shape, seed=0, scale=1.5):
  return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def _perturb(variables, seed=1, noise=0.3):
  """Adds N(0, noise^2) to every trainable leaf; constants stay as drawn."""
  if "params" not in variables:
    return variables
  rng = np.random.default_rng(seed)
  params = jax.tree.map(
      lambda v: np.asarray(v) + noise * rng.normal(size=v.shape).astype(np.float32),
      variables["params"])
  return {**variables, "params": params}


def _init(module, x, seed=0, noise=0.3):
  return _perturb(module.init(jax.random.key(seed), x), seed + 1, noise)


def _jacobians(f, x):
  """Per-example Jacobians f64[B, N_out, N_in] of f: f32[B, ...] -> f32[B, ...].

  One jvp per input coordinate, with that basis vector in every example at
  once: column i of every example's Jacobian, if the examples do not interact
  (a layer mixing examples would fail the tests that use this).
  """
  b, n = x.shape[0], x[0].size
  cols = []
  for i in range(n):
    t = np.zeros((b, n), np.float32)
    t[:, i] = 1.0
    _, col = jax.jvp(f, (x,), (t.reshape(x.shape),))
    cols.append(np.asarray(col, np.float64).reshape(b, -1))
  return np.stack(cols, axis=-1)


# name: (module, input shape, whether it preserves volume)
CASES = {
    "checker_0": (lambda: bj.AffineCoupling("checkerboard", False, hidden=8), IMG, False),
    "checker_1": (lambda: bj.AffineCoupling("checkerboard", True, hidden=8), IMG, False),
    "channel_0": (lambda: bj.AffineCoupling("channel", False, hidden=8), IMG, False),
    "channel_1": (lambda: bj.AffineCoupling("channel", True, hidden=8), IMG, False),
    "channel_sigmoid": (lambda: bj.AffineCoupling("channel", True, hidden=8, scale="sigmoid"),
                        IMG, False),
    "flat_0": (lambda: bj.AffineCouplingFlat((8,), parity=False), FLAT, False),
    "flat_1": (lambda: bj.AffineCouplingFlat((8,), parity=True), FLAT, False),
    "actnorm_img": (lambda: bj.ActNorm(), IMG, False),
    "actnorm_flat": (lambda: bj.ActNorm(), FLAT, False),
    "conv1x1": (lambda: bj.Invertible1x1Conv(), IMG, False),
    "squeeze": (lambda: bj.Squeeze(), IMG, True),
    "split_prior": (lambda: bj.SplitPrior(), IMG, False),
    "learned_prior": (lambda: bj.LearnedPrior(), IMG, False),
    "permute_random": (lambda: bj.Permute("random"), FLAT, True),
    "permute_reverse": (lambda: bj.Permute("reverse"), FLAT, True),
    "spline_0": (lambda: bj.RationalQuadraticSpline((8,), 4, BOUND, parity=False), FLAT, False),
    "spline_1": (lambda: bj.RationalQuadraticSpline((8,), 4, BOUND, parity=True), FLAT, False),
    # tanh: every x_<i reaches x_i (no dead units), so a missing sampling pass shows.
    "maf": (lambda: bj.MAFTransform((8,), activation=jnp.tanh), FLAT, False),
    "chain_img": (lambda: bj.Chain([
        bj.ActNorm(), bj.Invertible1x1Conv(), bj.AffineCoupling("checkerboard", hidden=8),
        bj.AffineCoupling("channel", True, hidden=8), bj.Squeeze()]), IMG, False),
    "chain_flat": (lambda: bj.Chain([
        bj.AffineCouplingFlat((8,)), bj.Permute(), bj.RationalQuadraticSpline((8,), 4, BOUND),
        bj.MAFTransform((8,))]), FLAT, False),
}


@pytest.fixture(params=sorted(CASES), name="case", scope="module")
def _case(request):
  make, shape, volume_preserving = CASES[request.param]
  module, x = make(), _x(shape)
  # Smaller noise for splines: random steep bins make the float32 inverse ill-conditioned.
  noise = 0.1 if "spline" in request.param else 0.3
  return module, _init(module, x, noise=noise), x, volume_preserving


def test_inverse_recovers_input_and_reverse_log_det_is_minus_forward(case):
  module, variables, x, _ = case
  y, ld = module.apply(variables, x)
  assert y.shape != x.shape or not np.allclose(y, x, atol=1e-3), "layer is the identity"
  x_back, ld_back = module.apply(variables, y, reverse=True)
  np.testing.assert_allclose(x_back, x, rtol=1e-5, atol=1e-5)
  assert ld.shape == ld_back.shape == x.shape[:1]
  np.testing.assert_allclose(ld_back, -ld, atol=1e-4)


def test_forward_log_det_matches_jacobian(case):
  module, variables, x, volume_preserving = case
  _, ld = module.apply(variables, x)
  if not volume_preserving:
    assert np.all(np.abs(ld) > 1e-2), ld        # else the comparison proves little
  jac = _jacobians(lambda v: module.apply(variables, v)[0], x)
  sign, want = np.linalg.slogdet(jac)
  assert np.all(sign != 0)
  np.testing.assert_allclose(ld, want, atol=1e-3)


def test_couplings_and_maf_start_at_the_identity():
  for module, shape in [(bj.AffineCoupling("checkerboard", hidden=8), IMG),
                        (bj.AffineCoupling("channel", hidden=8), IMG),
                        (bj.AffineCouplingFlat((8,)), FLAT),
                        (bj.RationalQuadraticSpline((8,), 4, BOUND), FLAT),
                        (bj.MAFTransform((8,)), FLAT),
                        (bj.SplitPrior(), IMG), (bj.LearnedPrior(), IMG)]:
    x = _x(shape)
    y, ld = module.apply(module.init(jax.random.key(0), x), x)
    np.testing.assert_allclose(y, x, atol=1e-5)
    np.testing.assert_allclose(ld, 0.0, atol=1e-5)


@pytest.mark.parametrize("mask,parity", [("checkerboard", False), ("checkerboard", True),
                                         ("channel", False), ("channel", True)])
def test_coupling_leaves_the_conditioning_part_unchanged(mask, parity):
  module = bj.AffineCoupling(mask, parity, hidden=8)
  x = _x(IMG)
  y, _ = module.apply(_init(module, x), x)
  if mask == "checkerboard":
    hh, ww = np.meshgrid(np.arange(IMG[1]), np.arange(IMG[2]), indexing="ij")
    kept = np.broadcast_to(((hh + ww) % 2 == int(parity))[..., None], IMG)
  else:
    kept = np.zeros(IMG, bool)            # C = 3, so the conditioning part is C//2 = 1 channel:
    kept[..., 2:] = parity                # the last one with parity,
    kept[..., :1] = not parity            # else the first
  np.testing.assert_array_equal(np.asarray(y)[kept], x[kept])
  assert np.all(np.abs(y - x)[~kept] > 0)


def test_split_prior_scores_the_factored_half_under_a_gaussian_given_the_kept_half():
  module, x = bj.SplitPrior(), _x(IMG)
  variables = _init(module, x)
  y, ld = module.apply(variables, x)
  h, z = bj.factor_out(x)
  np.testing.assert_array_equal(bj.factor_out(y)[0], h)        # the kept half passes
  raw = nn.Conv(2 * z.shape[-1], (3, 3)).apply({"params": variables["params"]["conv"]}, h)
  raw_s, t = np.split(np.asarray(raw, np.float64), 2, axis=-1)
  log_s = bj.PRIOR_SCALE_BOUND * np.tanh(raw_s / bj.PRIOR_SCALE_BOUND)
  sigma, mu = np.exp(-log_s), -t * np.exp(-log_s)
  assert np.ptp(sigma) > 0.1 and np.ptp(mu) > 0.1               # depends on h
  z64 = np.asarray(z, np.float64)
  want = (-0.5 * ((z64 - mu) / sigma) ** 2 - np.log(sigma)).reshape(IMG[0], -1).sum(-1)
  got = (-0.5 * np.asarray(bj.factor_out(y)[1], np.float64) ** 2).reshape(IMG[0], -1).sum(-1)
  np.testing.assert_allclose(got + np.asarray(ld), want, rtol=1e-5, atol=1e-4)
  # Sampling z' ~ N(0, T^2) and inverting draws z = mu + T sigma eps.
  eps = _x(z.shape, seed=5, scale=1.0)
  back, _ = module.apply(variables, bj.merge_factored(h, 0.7 * eps), reverse=True)
  np.testing.assert_allclose(bj.factor_out(back)[1], mu + 0.7 * sigma * eps, rtol=1e-4,
                             atol=1e-4)


def test_log_scale_bound_keeps_extreme_parameters_finite():
  x = _x(FLAT)
  for module, n_scaled in [(bj.AffineCouplingFlat((8,), scale_bound=2.0), 3),
                           (bj.MAFTransform((8,), scale_bound=2.0), 5)]:
    v = jax.tree.map(lambda p: 1e4 * p, _init(module, x))
    y, ld = module.apply(v, x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(ld))
    assert np.all(np.abs(ld) <= 2.0 * n_scaled + 1e-4), ld
    assert np.any(np.abs(ld) > 1.0), ld                # the bound is actually reached


def test_sigmoid_coupling_scale_only_contracts():
  """Glow's scale sigmoid(raw + 2): every log-det entry < 0, 0.88 per entry at init."""
  x = _x(IMG)
  module = bj.AffineCoupling("channel", False, hidden=8, scale="sigmoid")
  variables = module.init(jax.random.key(0), x)
  _, ld0 = module.apply(variables, x)
  n_scaled = 2 * 4 * (3 - 3 // 2)        # H * W * the transformed channels
  np.testing.assert_allclose(ld0, n_scaled * np.log(jax.nn.sigmoid(2.0)), rtol=1e-5)
  big = jax.tree.map(lambda p: 1e4 * p, _perturb(variables))
  y, ld = module.apply(big, x)
  assert np.all(np.isfinite(y)) and np.all(ld < 0), ld
  with pytest.raises(ValueError, match="coupling scale"):
    bj.coupling_log_scale(jnp.zeros(2), "exp", 2.0)


@pytest.mark.parametrize("shape", [IMG, FLAT])
def test_actnorm_init_standardizes_the_init_batch(shape):
  c = shape[-1]
  x = _x(shape, scale=1.0) * np.geomspace(0.2, 5.0, c) + np.linspace(-2.0, 3.0, c)
  x = x.astype(np.float32)
  module = bj.ActNorm()
  variables = module.init(jax.random.key(0), x)
  y, ld = module.apply(variables, x)
  axes = tuple(range(len(shape) - 1))
  np.testing.assert_allclose(y.mean(axes), 0.0, atol=1e-5)
  np.testing.assert_allclose(y.std(axes), 1.0, atol=1e-4)
  positions = int(np.prod(shape[1:-1]))
  np.testing.assert_allclose(ld, -positions * np.log(x.std(axes)).sum(), rtol=1e-4)
  # Initialized in reverse (its input is then not data) it starts at the identity.
  y_rev, _ = module.apply(module.init(jax.random.key(0), x, reverse=True), x)
  np.testing.assert_allclose(y_rev, x)


def test_1x1_conv_starts_as_a_rotation_and_keeps_fixed_parts_out_of_params():
  module = bj.Invertible1x1Conv()
  x = _x(IMG)
  variables = module.init(jax.random.key(3), x)
  assert set(variables["constants"]) == {"P", "sign_s"}
  assert set(variables["params"]) == {"lower", "upper", "log_s"}
  p = np.asarray(variables["constants"]["P"])
  assert set(np.unique(p)) == {0.0, 1.0}
  np.testing.assert_array_equal(p.sum(0), 1.0)
  np.testing.assert_array_equal(p.sum(1), 1.0)
  y, ld = module.apply(variables, x)
  # A rotation keeps every pixel's channel vector at the same length (16 pixels, C = 3).
  np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
  np.testing.assert_allclose(ld, 0.0, atol=1e-5)
  assert not np.allclose(y, x, atol=0.1)
  other = module.init(jax.random.key(4), x)
  assert not np.allclose(module.apply(other, x)[0], y)


def test_permute_random_is_a_stored_permutation():
  module = bj.Permute("random")
  x = _x(FLAT)
  variables = module.init(jax.random.key(0), x)
  assert "params" not in variables
  perm = np.asarray(variables["constants"]["perm"])
  np.testing.assert_array_equal(np.sort(perm), np.arange(FLAT[1]))
  np.testing.assert_array_equal(module.apply(variables, x)[0], x[:, perm])


def test_squeeze_layout_and_factor_out():
  x = _x(IMG)                                                # [2, 2, 4, 3]
  y, ld = bj.Squeeze().apply({}, x)
  assert y.shape == (2, 1, 2, 12)
  np.testing.assert_array_equal(ld, 0.0)
  # Output pixel (i, j) stacks input pixels (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1).
  want = np.concatenate([x[:, 0, 2], x[:, 0, 3], x[:, 1, 2], x[:, 1, 3]], axis=-1)
  np.testing.assert_array_equal(y[:, 0, 1], want)
  h, z = bj.factor_out(y)
  assert h.shape == z.shape == (2, 1, 2, 6)
  np.testing.assert_array_equal(bj.merge_factored(h, z), y)
  h, z = bj.factor_out(x)
  assert h.shape[-1] == 1 and z.shape[-1] == 2
  np.testing.assert_array_equal(bj.merge_factored(h, z), x)


def test_made_is_autoregressive_in_every_parameter_group():
  d, n_params = FLAT[1], 3
  # tanh, not relu: a dead relu would zero entries the masks allow.
  module = masked.MADE((8, 8), n_params=n_params, activation=jnp.tanh)
  x = _x(FLAT)
  variables = _perturb(module.init(jax.random.key(0), x))
  assert module.apply(variables, x).shape == FLAT + (n_params,)
  jac = _jacobians(lambda v: module.apply(variables, v), x)            # [B, D * P, D]
  jac = jac.reshape(FLAT[0], d, n_params, d)
  for p in range(n_params):
    j = jac[:, :, p, :]
    np.testing.assert_array_equal(np.triu(j), 0.0)     # out i ignores inputs i, i+1, ...
    below = j[:, *np.tril_indices(d, -1)]
    assert np.all(np.abs(below) > 1e-7), j             # and uses every input before i


def test_made_hidden_degrees_use_every_unit():
  d = 5
  deg = masked.hidden_degrees(9, d)
  assert set(deg) == set(range(1, d))
  into = masked.degree_mask(masked.input_degrees(d), deg, strict=False)
  out_of = masked.degree_mask(deg, masked.input_degrees(d), strict=True)
  assert np.all(into.sum(0) > 0) and np.all(out_of.sum(1) > 0)


def test_maf_jacobian_is_triangular_with_diagonal_exp_minus_alpha():
  module = bj.MAFTransform((8,), activation=jnp.tanh)
  x = _x(FLAT)
  variables = _init(module, x)
  _, ld = module.apply(variables, x)
  jac = _jacobians(lambda v: module.apply(variables, v)[0], x)
  np.testing.assert_array_equal(np.triu(jac, 1), 0.0)
  assert np.all(np.abs(jac[:, *np.tril_indices(FLAT[1], -1)]) > 1e-4)
  diag = np.diagonal(jac, axis1=1, axis2=2)
  np.testing.assert_allclose(np.log(np.abs(diag)).sum(-1), ld, atol=1e-5)
  assert np.all(diag.std(-1) > 1e-3)                    # the scales differ per entry


def test_maf_sampling_takes_all_d_passes():
  # A linear MADE with O(1) weights: each pass fixes one more entry, and an
  # entry left unfixed is off by O(1), where the generic case's weak coupling
  # lets the fixed-point iteration converge to ~1e-5 a pass early.
  module = bj.MAFTransform(())
  x = _x(FLAT)
  variables = _init(module, x, noise=1.0)
  u, _ = module.apply(variables, x)
  x_back, _ = module.apply(variables, u, reverse=True)
  np.testing.assert_allclose(x_back, x, rtol=1e-5, atol=1e-5)


def test_chain_composes_values_and_log_dets_in_order():
  layers_ = [bj.ActNorm(), bj.Permute(), bj.AffineCouplingFlat((8,), parity=True)]
  chain = bj.Chain(layers_)
  x = _x(FLAT)
  variables = _init(chain, x)
  y, ld = chain.apply(variables, x)
  h, total = x, 0.0
  for i, layer in enumerate(layers_):
    sub = {col: tree[f"bijectors_{i}"] for col, tree in variables.items()
           if f"bijectors_{i}" in tree}
    h, ld_i = layer.apply(sub, h)
    assert np.all(np.abs(ld_i) > 1e-2) or i == 1
    total = total + ld_i
  np.testing.assert_allclose(y, h, atol=1e-6)
  np.testing.assert_allclose(ld, total, atol=1e-5)
  x_back, ld_back = chain.apply(variables, y, reverse=True)
  np.testing.assert_allclose(x_back, x, atol=1e-5)
  np.testing.assert_allclose(ld_back, -ld, atol=1e-5)


@functools.partial(jax.jit, static_argnames="inverse")
def _spline(x, w, h, d, inverse=False):
  """rq_spline on [-BOUND, BOUND], f32[N], plus autodiff checks.

  Returns (out, log_det, d out/d x elementwise, grads of sum(out) + sum(log_det)
  w.r.t. (x, w, h, d)).
  """
  f = lambda *a: bj.rq_spline(*a, BOUND, inverse)
  out, ld = f(x, w, h, d)
  slope = jax.grad(lambda v: f(v, w, h, d)[0].sum())(x)     # elementwise map
  grads = jax.grad(lambda *a: sum(jnp.sum(o) for o in f(*a)), argnums=(0, 1, 2, 3))(
      x, w, h, d)
  return out, ld, slope, grads


def _spline_params(seed=0, scale=1.0, shared=False):
  """(widths, heights, derivatives): f32[N, K], f32[N, K], f32[N, K-1]; `shared`: one spline."""
  rng = np.random.default_rng(seed)
  n = 1 if shared else N_SPLINE
  return tuple(np.broadcast_to(scale * rng.normal(size=(n, k)), (N_SPLINE, k)).astype(np.float32)
               for k in (K_SPLINE, K_SPLINE, K_SPLINE - 1))


def test_spline_is_the_identity_outside_the_bound():
  tail = np.geomspace(BOUND + 1e-3, 1e3, N_SPLINE // 2)
  x = np.concatenate([-tail, tail]).astype(np.float32)
  for inverse in (False, True):
    y, ld, slope, grads = _spline(x, *_spline_params(scale=2.0), inverse=inverse)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(ld, 0.0)
    np.testing.assert_array_equal(slope, 1.0)


def test_spline_gradients_are_finite_in_the_tails_and_at_the_bound():
  x = np.repeat(np.float32([-1e3, -BOUND, BOUND, 1e3]), N_SPLINE // 4)
  at_bound = np.abs(x) == BOUND
  for inverse in (False, True):
    y, ld, slope, grads = _spline(x, *_spline_params(scale=2.0), inverse=inverse)
    for g in grads:
      assert np.all(np.isfinite(g)), (inverse, grads)
    # The end knots are pinned at +-B with slope 1: y(+-B) = +-B, slope 1, no volume change.
    # (Looser in reverse: solving for theta ~ 1 in a steep end bin loses digits.)
    atol = 1e-2 if inverse else 1e-4
    np.testing.assert_allclose(y[at_bound], x[at_bound], atol=1e-5)
    np.testing.assert_allclose(slope, 1.0, atol=atol)
    np.testing.assert_allclose(ld, 0.0, atol=atol)
    assert np.any(grads[1][at_bound] != 0)              # the spline branch was differentiated


def test_spline_is_monotone_with_log_det_the_log_slope():
  x = np.linspace(-BOUND - 0.5, BOUND + 0.5, N_SPLINE, dtype=np.float32)
  y, ld, slope, _ = _spline(x, *_spline_params(seed=2, scale=2.0, shared=True))
  assert np.all(np.diff(y) > 0)
  assert np.all(slope > 0)
  np.testing.assert_allclose(ld, np.log(slope), atol=1e-4)
  assert np.ptp(np.asarray(ld)) > 0.5                        # far from linear


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_spline_inverse_is_exact(scale):
  x = np.random.default_rng(5).uniform(-BOUND, BOUND, N_SPLINE).astype(np.float32)
  params = _spline_params(seed=3, scale=scale)
  y, ld, _, _ = _spline(x, *params)
  x_back, ld_back, _, _ = _spline(y, *params, inverse=True)
  assert np.max(np.abs(y - x)) > 0.1
  # A few float32 ulps of error in y move x by that over the slope: exact up to conditioning.
  tol = 1e-6 + 5e-7 * np.abs(y) * np.exp(-ld)
  assert np.all(np.abs(x_back - x) <= tol), np.max(np.abs(x_back - x) / tol)
  # The inverse's log-det is minus the forward one at the point it returns; at the
  # original x too where the slope is not tiny (|log_det| < 5).
  _, ld_at_back, _, _ = _spline(x_back, *params)
  np.testing.assert_allclose(ld_back, -ld_at_back, atol=1e-4)
  ok = np.abs(ld) < 5.0
  assert ok.mean() > 0.5
  np.testing.assert_allclose(ld_back[ok], -ld[ok], atol=1e-3)


def test_spline_with_zero_parameters_is_the_identity():
  x = np.linspace(-BOUND, BOUND, N_SPLINE, dtype=np.float32)
  y, ld, _, _ = _spline(x, *_spline_params(scale=0.0))
  np.testing.assert_allclose(y, x, atol=1e-5)
  np.testing.assert_allclose(ld, 0.0, atol=1e-5)


def test_bad_options_are_rejected():
  with pytest.raises(ValueError, match="mask must be"):
    bj.AffineCoupling("stripes").init(jax.random.key(0), _x(IMG))
  with pytest.raises(ValueError, match="mode must be"):
    bj.Permute("shuffle").init(jax.random.key(0), _x(FLAT))
  with pytest.raises(ValueError, match="even H and W"):
    bj.Squeeze().init(jax.random.key(0), _x((1, 3, 4, 1)))
  with pytest.raises(ValueError, match="at least 2 channels"):
    bj.AffineCoupling("channel").init(jax.random.key(0), _x((1, 2, 2, 1)))


def test_variational_dequantizer_log_q_is_the_density_of_u_by_its_jacobian():
  module = bj.VariationalDequantizer(hidden=8, steps=2)
  levels, eps = _x(IMG, seed=3, scale=0.3), _x(IMG, seed=4, scale=1.0)
  variables = _perturb(module.init(jax.random.key(0), levels, eps), noise=0.1)
  u, log_q = module.apply(variables, levels, eps)
  assert np.all((u > 0) & (u < 1))
  assert np.abs(np.asarray(u) - jax.nn.sigmoid(eps)).max() > 1e-2, "q is still the init"
  jac = _jacobians(lambda e: module.apply(variables, levels, e)[0], eps)
  sign, log_det = np.linalg.slogdet(jac)
  assert np.all(sign != 0)
  log_normal = (-0.5 * (eps.astype(np.float64) ** 2).reshape(IMG[0], -1).sum(-1)
                - 0.5 * eps[0].size * np.log(2 * np.pi))
  np.testing.assert_allclose(log_q, log_normal - log_det, atol=1e-3)
  eps_back, log_q_back = module.apply(variables, levels, u, reverse=True)
  np.testing.assert_allclose(eps_back, eps, atol=1e-4)
  np.testing.assert_allclose(log_q_back, log_q, atol=1e-3)
  # The image conditions q: other levels, other u for the same eps.
  u_other, _ = module.apply(variables, -levels, eps)
  assert np.abs(np.asarray(u_other) - np.asarray(u)).max() > 1e-3


def test_variational_dequantizer_starts_as_a_logistic_normal():
  module = bj.VariationalDequantizer(hidden=8, steps=2)
  levels, eps = _x(IMG, seed=3, scale=0.3), _x(IMG, seed=4, scale=1.0)
  u, log_q = module.apply(module.init(jax.random.key(0), levels, eps), levels, eps)
  np.testing.assert_allclose(u, jax.nn.sigmoid(eps), rtol=1e-6)
  e = eps.astype(np.float64).reshape(IMG[0], -1)
  s = 1 / (1 + np.exp(-e))
  want = (-0.5 * e**2 - 0.5 * np.log(2 * np.pi) - np.log(s * (1 - s))).sum(-1)
  np.testing.assert_allclose(log_q, want, rtol=1e-5)
