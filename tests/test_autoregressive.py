"""Neural autoregressive models: masks by gradient probes, the PixelCNN blind spot, exact
normalization by enumeration, cached = re-forward sampling, samples vs exact probabilities,
loss units, the mask-ensemble mixture and class conditioning."""
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax import config_lib, errors
from gen_jax.data import spec as spec_lib
from gen_jax.models import autoregressive as ar
from gen_jax.nn import autoregressive_nets as arn

# Many small programs: XLA's optimisation passes cost more than they save here.
pytestmark = pytest.mark.usefixtures("cheap_compiles")

SMALL_PIX = dict(features=6, layers=2, first_kernel=3, kernel=3, out_hidden=6)


def _config(**kw):
  c = config_lib.base()
  c.family = "autoregressive"
  c.model = ar.default_model(**kw)
  c.data.variant = "binarized_static" if c.model.likelihood == "bernoulli" else "grayscale"
  c.data.labels = bool(c.model.num_classes)
  return c


def _family(shape, seed=0, noise=0.5, **kw):
  """(family, params, config.model) with random parameters of the family's shapes.

  Parameters are drawn on the host (fan-in scaled normals, biases and class
  embeddings included), so tests pay no compile for initializers; the family's
  own `init` runs in the experiment smokes and in the loss test. Cached: tests
  that share a model share its compiles.
  """
  return _family_cached(tuple(shape), seed, noise, tuple(sorted(kw.items())))


@functools.lru_cache(maxsize=None)
def _family_cached(shape, seed, noise, items):
  c = _config(**dict(items))
  fam = ar.make(c, spec_lib.example(shape))
  abstract = jax.eval_shape(fam.init, jax.random.key(0), {"x": jnp.zeros((1,) + shape)})[0]
  rng = np.random.default_rng(seed)

  def draw(leaf):
    fan_in = math.prod(leaf.shape[:-1]) if len(leaf.shape) == 4 else leaf.shape[0]
    scale = noise if len(leaf.shape) == 1 else noise / math.sqrt(fan_in) * 2
    return jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype)
  return fam, jax.tree.map(draw, abstract), c.model


_EVAL = {}


def _eval(fam):
  """jit(fam.eval_fn), one per (cached) family."""
  return _EVAL.setdefault(id(fam), jax.jit(fam.eval_fn))


def _states(shape, levels=(0.0, 1.0)):
  """Every image of `shape` with values in `levels`: f32[L^D, *shape]."""
  d = math.prod(shape)
  return np.array(list(itertools.product(levels, repeat=d)), np.float32).reshape((-1,) + shape)


_LOG_PROB = {}


def _flat_log_prob(m, shape, params, x, k):
  """log p_k(x) of NADE ordering / MADE mask k, from the network itself: f32[N].

  One compiled program per model: the mask / ordering is an argument.
  """
  d = math.prod(shape)
  if m.arch == "made":
    arg = [jnp.asarray(g[k]) for g in ar.made_degrees_of(m, d)]
  else:
    arg = jnp.asarray(ar.nade_orderings(d, m.num_masks, m.order, m.mask_seed)[k])
  if id(m) not in _LOG_PROB:
    net = ar.build(m, shape)

    def log_prob(p, xf, arg):
      out = net.apply({"params": p["model"]}, xf, arg)
      out = out if m.arch == "made" else out[..., None]
      return arn.head_log_prob(m.likelihood, out, xf).sum(-1)
    _LOG_PROB[id(m)] = jax.jit(log_prob)
  return _LOG_PROB[id(m)](params, jnp.asarray(x).reshape(len(x), -1), arg)


def _orders(m, d):
  """The sampling/probe ordering of each mask/ordering k: i32[K, D] (dimension at rank r)."""
  if m.arch == "made":
    return np.argsort(ar.made_degrees_of(m, d)[0], axis=1)
  return ar.nade_orderings(d, m.num_masks, m.order, m.mask_seed)


# ---------------------------------------------------------------------------------------------
# Masks and degrees

def test_made_degrees_follow_germain_with_natural_or_random_orderings():
  deg = arn.made_degrees(10, (7, 5), 4, order="random", seed=3)
  assert [g.shape for g in deg] == [(4, 10), (4, 7), (4, 5)]
  for k in range(4):
    assert sorted(deg[0][k]) == list(range(1, 11))          # an ordering of 1..D
    assert deg[1][k].min() >= 1 and deg[1][k].max() <= 9    # hidden degrees in [1, D-1]
    assert deg[2][k].min() >= deg[1][k].min()               # no dead units (Germain Sec. 4)
  assert len({tuple(d) for d in deg[0]}) == 4               # four different orderings
  natural = arn.made_degrees(10, (7,), 3, order="natural")
  assert (natural[0] == np.arange(1, 11)).all()


def test_conv_masks_type_a_and_b_with_rgb_channel_groups():
  a1 = arn.conv_mask(1, 1, 1, 1, 2, "A", 1)
  b1 = arn.conv_mask(1, 1, 1, 1, 2, "B", 1)
  np.testing.assert_array_equal(a1[:, :, 0, 0], [[1, 1, 1], [1, 0, 0]])   # centre cut (A)
  np.testing.assert_array_equal(b1[:, :, 0, 0], [[1, 1, 1], [1, 1, 0]])   # centre kept (B)
  # RGB: at the centre, output group g sees input groups < g (A) or <= g (B).
  a3 = arn.conv_mask(1, 1, 1, 3, 6, "A", 3)[1, 1]           # [in 3 (R, G, B), out 6]
  b3 = arn.conv_mask(1, 1, 1, 6, 6, "B", 3)[1, 1]
  np.testing.assert_array_equal(a3, [[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0] * 6])
  go = arn.channel_groups(6, 3)
  np.testing.assert_array_equal(b3, go[None, :] >= go[:, None])
  # A gate's two halves share the groups; the vertical stack keeps every tap.
  np.testing.assert_array_equal(arn.channel_groups(12, 3, 2), [0, 0, 1, 1, 2, 2] * 2)
  assert arn.conv_mask(1, 1, 1, 3, 6, "none", 3).all()


# ---------------------------------------------------------------------------------------------
# The autoregressive property, by gradient probes

FLAT = {
    "nade": dict(arch="nade", hidden=(8,)),
    "nade_orderings": dict(arch="nade", hidden=(8,), order="random", num_masks=3),
    "made_1hl_masks": dict(arch="made", hidden=(12,), order="random", num_masks=3),
    "made_2hl_direct": dict(arch="made", hidden=(12, 10), order="random", num_masks=2,
                            direct=True),
}


@pytest.mark.parametrize("name", sorted(FLAT))
def test_flat_output_depends_only_on_earlier_inputs_for_every_mask(name):
  shape, d = (2, 3, 1), 6
  _, params, m = _family(shape, **FLAT[name])
  net = ar.build(m, shape)
  x = jax.random.uniform(jax.random.key(7), (d,))
  if m.arch == "made":
    degs = ar.made_degrees_of(m, d)
    args = [[jnp.asarray(g[k]) for g in degs] for k in range(m.num_masks)]
  else:
    args = [jnp.asarray(o) for o in _orders(m, d)]
  # One compiled Jacobian per model; the mask / ordering is an argument.
  def heads(v, arg):
    return net.apply({"params": params["model"]}, v[None], arg)[0].reshape(d, -1).sum(-1)
  jac_fn = jax.jit(jax.jacrev(heads))
  for k, order in enumerate(_orders(m, d)):
    jac = np.asarray(jac_fn(x, args[k]))                      # [out d, in e]
    rank = np.argsort(order)                                  # position of each dim
    forbidden = rank[None, :] >= rank[:, None]
    assert not jac[forbidden].any(), (name, k)
    assert np.abs(jac[order[-1]]).sum() > 0                   # the last one sees something


def _allowed(h, w, c):
  """bool[H, W, C, H, W, C]: output (i, j, c) may see input (i', j', c')."""
  pos = np.arange(h * w).reshape(h, w)
  ch = np.arange(c)
  earlier = pos[None, None, :, :] < pos[:, :, None, None]             # [H, W, H, W]
  same = pos[None, None, :, :] == pos[:, :, None, None]
  chan = ch[None, :] < ch[:, None]                                      # [c, c']
  return (earlier[:, :, None, :, :, None]
          | (same[:, :, None, :, :, None] & chan[None, None, :, None, None, :]))


PIXEL = [("pixelcnn", 1), ("pixelcnn", 3), ("gated_pixelcnn", 1), ("gated_pixelcnn", 3)]


@pytest.mark.parametrize("arch,channels", PIXEL)
def test_pixel_output_depends_only_on_earlier_pixels_and_channels(arch, channels):
  shape = (4, 4, channels)
  _, params, m = _family(shape, arch=arch, **SMALL_PIX)
  net = ar.build(m, shape)
  x = jax.random.uniform(jax.random.key(3), shape)
  allowed = _allowed(*shape)

  gated = arch == "gated_pixelcnn"
  groups = arn.channel_groups(m.features, channels)

  def probes(v):
    """Heads [H, W, C]; for the gated net also both stacks on their own."""
    if not gated:
      return net.apply({"params": params["model"]}, v[None])[0].sum(-1), ()
    out, v_down, hor = net.apply({"params": params["model"]}, v[None], stacks=True)
    hor = jnp.stack([hor[0][..., groups == g].sum(-1) for g in range(channels)], -1)
    return out[0].sum(-1), (v_down[0].sum(-1), hor)

  jac, stacks = jax.jit(jax.jacrev(probes))(x)
  jac = np.asarray(jac)
  assert not jac[~allowed].any()
  assert np.abs(jac[-1, -1, -1]).sum() > 0
  if gated:
    jv, jh = (np.asarray(j) for j in stacks)
    rows = np.arange(shape[0])
    above = (rows[None, :] < rows[:, None])[:, None, :, None, None]   # [H, 1, H, 1, 1]
    assert not jv[~np.broadcast_to(above, jv.shape)].any()            # vertical: rows < i only
    assert np.abs(jv[-1]).sum() > 0
    assert not jh[~allowed].any()                                      # horizontal: causal


def test_gated_pixelcnn_has_no_blind_spot_while_pixelcnn_has_one():
  shape = (5, 5, 1)
  pos = np.arange(25).reshape(5, 5)
  earlier = pos[None, None] < pos[:, :, None, None]                   # [H, W, H, W]
  jacs = {}
  for arch, kw in (("pixelcnn", dict(features=6, layers=3, first_kernel=3)),
                   ("gated_pixelcnn", dict(features=6, layers=3, first_kernel=5))):
    _, params, m = _family(shape, arch=arch, out_hidden=6, kernel=3, **kw)
    net = ar.build(m, shape)
    def logit(v, net=net, params=params):
      return net.apply({"params": params["model"]}, v[None])[0, ..., 0, 0]        # [H, W]
    x = jax.random.uniform(jax.random.key(1), shape)
    jacs[arch] = np.abs(np.asarray(jax.jit(jax.jacrev(logit))(x)))[..., 0]   # [H, W, H, W]
  # Gated: every earlier pixel reaches every output.
  assert (jacs["gated_pixelcnn"][earlier] > 0).all()
  # Plain: pixels up and right of the target are unseen at any depth ((i-1, j+2) onwards).
  blind = earlier & (jacs["pixelcnn"] == 0)
  assert blind[3, 1, 2, 3] and blind[3, 1, 2, 4] and blind[4, 0, 3, 2]
  assert not blind[3, 1, 2, 2] and not blind[3, 1, 3, 0]


# ---------------------------------------------------------------------------------------------
# Exact normalization: sum_x p(x) = 1 over every state

NORMALIZE = {
    "nade": ((4, 4, 1), FLAT["nade"]),
    "nade_orderings": ((4, 4, 1), FLAT["nade_orderings"]),
    "made_1hl_masks": ((4, 4, 1), FLAT["made_1hl_masks"]),
    "made_2hl_direct": ((4, 4, 1), FLAT["made_2hl_direct"]),
    "pixelcnn": ((4, 4, 1), dict(arch="pixelcnn", **SMALL_PIX)),
    "gated": ((4, 4, 1), dict(arch="gated_pixelcnn", **SMALL_PIX)),
    "pixelcnn_rgb": ((2, 2, 3), dict(arch="pixelcnn", **SMALL_PIX)),
    "gated_rgb_conditional": ((2, 2, 3), dict(arch="gated_pixelcnn", num_classes=3, **SMALL_PIX)),
    "made_conditional": ((3, 4, 1), dict(arch="made", hidden=(12,), num_classes=2)),
}


@pytest.mark.parametrize("name", sorted(NORMALIZE))
def test_probabilities_sum_to_one_over_all_binary_states(name):
  shape, kw = NORMALIZE[name]
  fam, params, m = _family(shape, **kw)
  xs = jnp.asarray(_states(shape))
  eval_fn = _eval(fam)
  total = lambda lp: float(jnp.exp(jax.nn.logsumexp(lp)))
  out = eval_fn(params, {}, {"x": xs}, jax.random.key(0))
  assert total(-out["nll"]) == pytest.approx(1.0, abs=2e-5)          # the mixture / marginal
  if m.num_masks > 1:                                                   # each mask / ordering
    for k in range(m.num_masks):
      assert total(_flat_log_prob(m, shape, params, xs, k)) == pytest.approx(1.0, abs=2e-5)
  for c in range(m.num_classes):                                        # each class
    y = jnp.full((len(xs),), c, jnp.int32)
    out = eval_fn(params, {}, {"x": xs, "y": y}, jax.random.key(0))
    assert total(-out["nll_given_y"]) == pytest.approx(1.0, abs=2e-5)


@pytest.mark.parametrize("arch,likelihood,shape", [
    ("made", "categorical256", (1, 2, 1)), ("made", "logistic_mixture", (1, 2, 1)),
    ("gated_pixelcnn", "categorical256", (1, 1, 1)), ("pixelcnn", "logistic_mixture", (1, 1, 1))])
def test_8bit_heads_sum_to_one_over_all_levels(arch, likelihood, shape):
  kw = dict(hidden=(8,)) if arch == "made" else dict(SMALL_PIX, features=4, out_hidden=4)
  fam, params, _ = _family(shape, arch=arch, likelihood=likelihood, num_mixtures=3, **kw)
  xs = jnp.asarray(_states(shape, tuple(np.arange(256) / 255.0)))
  out = _eval(fam)(params, {}, {"x": xs}, jax.random.key(0))
  assert float(jnp.exp(jax.nn.logsumexp(-out["nll"]))) == pytest.approx(1.0, abs=1e-4)
  d = math.prod(shape)
  np.testing.assert_allclose(out["bpd"], out["nll"] / (d * math.log(2)), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Sampling

SAMPLERS = {
    "nade": ((3, 4, 1), FLAT["nade"]),
    "made_2hl_direct_cond": ((3, 4, 1), dict(FLAT["made_2hl_direct"], num_classes=2)),
    "pixelcnn_rgb_mixture": ((2, 3, 3), dict(arch="pixelcnn", likelihood="logistic_mixture",
                                             num_mixtures=2, **SMALL_PIX)),
    "gated_rgb_cond_256": ((3, 3, 3), dict(arch="gated_pixelcnn", num_classes=3,
                                           likelihood="categorical256", **SMALL_PIX)),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_cached_sampling_equals_reforward_sampling_for_the_same_key(name):
  shape, kw = SAMPLERS[name]
  fam, params, m = _family(shape, **kw)
  both = jax.jit(lambda p, r: (fam.sample(p, {}, r, 4), fam.sample(p, {}, r, 4, cached=False)))
  cached, naive = both(params, jax.random.key(11))
  assert cached.shape == (4,) + shape
  np.testing.assert_array_equal(cached, naive)
  levels = 2 if m.likelihood == "bernoulli" else 256
  np.testing.assert_array_equal(cached, np.round(cached * (levels - 1)) / (levels - 1))
  assert len(np.unique(np.asarray(cached))) > 1


@pytest.mark.parametrize("shape,kw", [((1, 3, 1), FLAT["nade"]),
                                      ((1, 3, 1), FLAT["made_1hl_masks"]),
                                      ((1, 1, 3), dict(arch="pixelcnn", **SMALL_PIX)),
                                      ((1, 3, 1), dict(arch="gated_pixelcnn", **SMALL_PIX))],
                         ids=["nade", "made", "pixelcnn_rgb", "gated"])
def test_sample_frequencies_match_the_exact_probabilities(shape, kw):
  fam, params, m = _family(shape, **kw)
  xs = _states(shape)
  if m.num_masks > 1:                        # samples come from mask 0
    p = np.exp(np.asarray(_flat_log_prob(m, shape, params, xs, 0)))
  else:
    p = np.exp(-np.asarray(_eval(fam)(params, {}, {"x": xs}, jax.random.key(0))["nll"]))
  n = 20000
  s = np.asarray(jax.jit(lambda r: fam.sample(params, {}, r, n))(jax.random.key(5)))
  idx = (s.reshape(n, -1) @ (2 ** np.arange(s[0].size)[::-1])).astype(int)
  freq = np.bincount(idx, minlength=len(p)) / n
  assert 0.5 * np.abs(freq - p).sum() < 0.02                 # total variation
  assert p.max() < 0.9                                       # a non-trivial distribution


# ---------------------------------------------------------------------------------------------
# Units, the ensemble, conditioning, config errors

def test_loss_is_summed_bce_in_nats_per_image_and_bits_per_dim_divide_by_d_ln2():
  shape = (3, 4, 1)
  fam, _, m = _family(shape, arch="made", hidden=(12,))
  params, _ = jax.jit(fam.init)(jax.random.key(0), {"x": jnp.zeros((1,) + shape)})
  x = (jax.random.uniform(jax.random.key(2), (5,) + shape) < 0.4).astype(jnp.float32)
  loss, (_, metrics) = jax.jit(fam.loss, static_argnums=0)(
      "model", params, {}, {"x": x}, jax.random.key(0))
  net = ar.build(m, shape)
  logits = jax.jit(net.apply)({"params": params["model"]}, x.reshape(5, -1),
                              [jnp.asarray(g[0]) for g in ar.made_degrees_of(m, 12)])[..., 0]
  bce = optax.sigmoid_binary_cross_entropy(logits, x.reshape(5, -1)).sum(-1)   # nats per image
  assert float(loss) == pytest.approx(float(bce.mean()), rel=1e-6)
  out = _eval(fam)(params, {}, {"x": x}, jax.random.key(0))
  np.testing.assert_allclose(out["nll"], bce, rtol=1e-6)
  assert metrics == {} and "bpd" not in out
  fam8, params8, _ = _family(shape, arch="made", hidden=(12,), likelihood="categorical256")
  x8 = jnp.round(x * 200.0) / 255.0
  loss8, (_, metrics8) = jax.jit(fam8.loss, static_argnums=0)(
      "model", params8, {}, {"x": x8}, jax.random.key(0))
  assert float(metrics8["bpd"]) == pytest.approx(float(loss8) / (12 * math.log(2)), rel=1e-6)
  assert "bits/dim" in fam8.eval_units["bpd"] and "nats per image" in fam8.eval_units["nll"]


def test_mask_ensemble_is_the_mixture_of_likelihoods_not_averaged_logits():
  shape = (3, 4, 1)
  fam, params, m = _family(shape, noise=1.5, **FLAT["made_1hl_masks"])
  xs = _states(shape)
  lps = np.stack([np.asarray(_flat_log_prob(m, shape, params, xs, k)) for k in range(3)])
  out = _eval(fam)(params, {}, {"x": jnp.asarray(xs)}, jax.random.key(0))
  mixture = np.logaddexp.reduce(lps, axis=0) - math.log(3)
  np.testing.assert_allclose(-out["nll"], mixture, rtol=1e-5)
  np.testing.assert_allclose(-out["nll_single"], lps[0], rtol=1e-5)
  assert "logsumexp" in fam.eval_units["nll"]
  # karpathy/pytorch-made#1: averaging the masks' logits is not a normalized model.
  net, degs = ar.build(m, shape), ar.made_degrees_of(m, 12)
  apply = jax.jit(net.apply)
  logits = np.mean([np.asarray(apply({"params": params["model"]}, jnp.asarray(xs.reshape(-1, 12)),
                                     [jnp.asarray(g[k]) for g in degs]))[..., 0]
                    for k in range(3)], axis=0)
  averaged = (xs.reshape(-1, 12) * logits - np.logaddexp(0, logits)).sum(-1)
  assert abs(np.exp(np.logaddexp.reduce(averaged)) - 1.0) > 1e-3


def test_conditional_model_reports_the_class_marginal_and_with_labels_p_x_given_y():
  shape = (2, 3, 1)
  fam, params, m = _family(shape, arch="gated_pixelcnn", num_classes=3, **SMALL_PIX)
  x = jnp.asarray(_states(shape)[::7])
  eval_fn = _eval(fam)
  labelled = [eval_fn(params, {}, {"x": x, "y": jnp.full((len(x),), c)}, jax.random.key(0))
              for c in range(3)]
  given = np.stack([out["nll_given_y"] for out in labelled])
  marginal = eval_fn(params, {}, {"x": x}, jax.random.key(0))
  np.testing.assert_allclose(-marginal["nll"], np.logaddexp.reduce(-given, 0) - math.log(3),
                             rtol=1e-5)
  np.testing.assert_allclose(labelled[1]["nll"], marginal["nll"], rtol=1e-6)
  assert "nll_given_y" not in marginal and not np.allclose(given[0], given[1])
  s = np.asarray(jax.jit(lambda r: fam.sample(params, {}, r, 3, labels=jnp.array([2, 2, 2])))(
      jax.random.key(0)))
  assert s.shape == (3,) + shape


@pytest.mark.parametrize("change,match", [
    (dict(arch="wavenet"), "model.arch"),
    (dict(likelihood="gaussian"), "model.likelihood"),
    (dict(arch="nade", hidden=(8, 8)), "nade"),
    (dict(arch="made", num_masks=0), "num_masks"),
    (dict(arch="pixelcnn", features=7), "multiples"),
    (dict(arch="gated_pixelcnn", kernel=4), "odd"),
    (dict(num_classes=10), "data.labels"),
])
def test_bad_configs_fail_with_one_line(change, match):
  c = _config()
  c.model.update(change)
  c.data.labels = False
  with pytest.raises(errors.ConfigError, match=match):
    ar.make(c, spec_lib.example((4, 4, 1)))
  c = _config(likelihood="categorical256")
  c.data.variant = "binarized_static"
  with pytest.raises(errors.ConfigError, match="grayscale"):
    ar.make(c, spec_lib.example((4, 4, 1)))


@pytest.mark.parametrize("per_example", [False, True])
def test_nade_handwritten_backward_equals_autodiff(per_example):
  r = np.random.default_rng(0)
  b, d, h = 3, 5, 4
  w_shape = (d, b, h) if per_example else (d, h)
  w, v = (jnp.asarray(r.standard_normal(w_shape), jnp.float32) for _ in range(2))
  c = jnp.asarray(r.standard_normal((b, h)), jnp.float32)
  xo = jnp.asarray(r.random((b, d)), jnp.float32)
  g_out = jnp.asarray(r.standard_normal((b, d)), jnp.float32)

  def reference(*args):   # autodiff through the plain forward scan
    return arn._nade_scan(*args)[1]    # pylint: disable=protected-access

  _, vjp_hand = jax.vjp(arn.nade_logits, w, v, c, xo)
  _, vjp_auto = jax.vjp(reference, w, v, c, xo)
  for hand, auto in zip(vjp_hand(g_out), vjp_auto(g_out), strict=True):
    np.testing.assert_allclose(hand, auto, rtol=2e-5, atol=2e-6)
