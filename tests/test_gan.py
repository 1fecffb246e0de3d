"""GAN family: player isolation, non-gradient state, upsampling equivalence, shapes."""
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gen_jax import config_lib, errors, optim
from gen_jax.data import sources, stacked_mnist
from gen_jax.data import spec as spec_lib
from gen_jax.models import gan
from gen_jax.nn import gan_nets
from gen_jax.trainers import sgd

pytestmark = pytest.mark.usefixtures("cheap_compiles")   # tiny models: compiling is the cost


def _brute_conv_transpose(x, k):
  """PyTorch ConvTranspose2d(k=4, s=2, p=1) by scattering: out[2i - 1 + t] += x[i] K[t]."""
  b, h, w, _ = x.shape
  out = np.zeros((b, 2 * h + 2, 2 * w + 2, k.shape[-1]))
  for i in range(h):
    for j in range(w):
      for ty in range(4):
        for tx in range(4):
          out[:, 2 * i + ty, 2 * j + tx] += x[:, i, j] @ k[ty, tx]
  return out[:, 1:2 * h + 1, 1:2 * w + 1]


def _brute_conv_stride2(x, k):
  """PyTorch Conv2d(k=4, s=2, p=1) as explicit windows."""
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, w = x.shape[1] // 2, x.shape[2] // 2
  out = np.zeros((x.shape[0], h, w, k.shape[-1]))
  for i in range(h):
    for j in range(w):
      out[:, i, j] = np.einsum("bhwc,hwco->bo", xp[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4], k)
  return out


@pytest.mark.parametrize("impl", gan_nets.UPSAMPLE)
def test_upsampling_equals_the_transposed_convolution(impl):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  k = rng.normal(size=(4, 4, 3, 4)).astype(np.float32)
  np.testing.assert_allclose(gan_nets.conv_transpose_2x(x, k, impl), _brute_conv_transpose(x, k),
                             atol=1e-4)


@pytest.mark.parametrize("impl", gan_nets.DOWNSAMPLE)
def test_downsampling_equals_the_strided_convolution(impl):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 8, 6, 3)).astype(np.float32)
  k = rng.normal(size=(4, 4, 3, 5)).astype(np.float32)
  np.testing.assert_allclose(gan_nets.conv_stride2(x, k, impl), _brute_conv_stride2(x, k),
                             atol=1e-4)


@pytest.mark.parametrize("impl", ["subpixel", "matmul", "mixed"])
def test_upsampling_formulations_have_the_transposed_convolutions_gradients(impl):
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(2, 4, 4, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(4, 4, 3, 2)), jnp.float32)
  t = jnp.asarray(rng.normal(size=(2, 8, 8, 2)), jnp.float32)

  def grads(impl):
    return jax.grad(lambda x, k: jnp.sum(t * gan_nets.conv_transpose_2x(x, k, impl)),
                    argnums=(0, 1))(x, k)
  for a, b in zip(grads("transpose"), grads(impl), strict=True):
    np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("impl", ["s2d", "matmul", "mixed"])
def test_downsampling_formulations_have_the_strided_convolutions_gradients(impl):
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 8, 6, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(4, 4, 3, 2)), jnp.float32)
  t = jnp.asarray(rng.normal(size=(2, 4, 3, 2)), jnp.float32)

  def grads(impl):
    return jax.grad(lambda x, k: jnp.sum(t * gan_nets.conv_stride2(x, k, impl)),
                    argnums=(0, 1))(x, k)
  for a, b in zip(grads("strided"), grads(impl), strict=True):
    np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("op,ref,shapes", [
    (gan_nets.conv_transpose_2x, "transpose", ((2, 4, 4, 3), (4, 4, 3, 2), (2, 8, 8, 2))),
    (gan_nets.conv_stride2, "strided", ((2, 8, 6, 3), (4, 4, 3, 2), (2, 4, 3, 2)))])
def test_mixed_formulations_differentiate_twice_like_the_reference(op, ref, shapes):
  """A gradient penalty (WGAN-GP) differentiates the input gradient again, through the custom VJP."""
  rng = np.random.default_rng(4)
  x, k, t = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in shapes)

  def penalty_grad(impl):
    def penalty(k):
      dx = jax.grad(lambda x: jnp.sum(t * jnp.tanh(op(x, k, impl))))(x)
      return jnp.sum(dx ** 2)
    return jax.grad(penalty)(k)
  np.testing.assert_allclose(penalty_grad("mixed"), penalty_grad(ref), rtol=1e-4, atol=1e-3)


def test_generators_with_either_upsampling_give_the_same_images():
  shape = (32, 32, 3)
  z = jax.random.normal(jax.random.key(0), (3, 100))
  outs = []
  for impl in gan_nets.UPSAMPLE:
    g = gan_nets.DCGANGenerator(shape, ch=8, upsample=impl)
    variables = g.init(jax.random.key(1), z, train=False)   # same key: same parameters
    outs.append(g.apply(variables, z, train=False))
  assert outs[0].shape == (3,) + shape
  for other in outs[1:]:
    np.testing.assert_allclose(outs[0], other, atol=1e-5)


def test_dcgan_64_has_pytorch_examples_parameter_counts():
  # pytorch/examples dcgan with nz=100, ngf=ndf=64, nc=3: netG 3,576,704, netD 2,765,568.
  z, x = jnp.zeros((2, 100)), jnp.zeros((2, 64, 64, 3))
  g = gan_nets.DCGANGenerator((64, 64, 3), ch=64)
  d = gan_nets.DCGANDiscriminator(ch=64)
  count = lambda v: sum(a.size for a in jax.tree.leaves(v["params"]))  # noqa: E731
  g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), z, train=True))
  d_vars = jax.eval_shape(lambda: d.init(jax.random.key(0), x, train=True))
  assert count(g_vars) == 3_576_704
  assert count(d_vars) == 2_765_568


def _config(arch, x_shape, **model):
  c = config_lib.base()
  c.family = "gan"
  c.model = gan.default_model(arch=arch, z_dim=8, g_ch=4, d_ch=4, g_hidden=(16, 16),
                              d_hidden=(16,), **model)
  c.data.variant = "continuous" if len(x_shape) == 1 else "grayscale"
  c.optim.d = optim.adam(1e-3, b1=0.5)
  c.optim.g = optim.adam(1e-3, b1=0.5)
  return c


CASES = {
    "dcgan_bn": ("dcgan", (16, 16, 1), dict(d_norm="batch")),
    "dcgan_sn_wgan_gp": ("dcgan", (16, 16, 1), dict(loss="wasserstein", gp_weight=10.0,
                                                    n_critic=3, d_norm="layer",
                                                    spectral_norm=True)),
    "sngan_hinge": ("sngan_cnn", (8, 8, 3), dict(loss="hinge", spectral_norm=True)),
    "mlp_2d": ("mlp", (2,), dict(batch_norm=True)),
    "mlp_2d_pacgan2": ("mlp", (2,), dict(batch_norm=True, pack=2)),
    "dcgan_bn_pacgan4": ("dcgan", (16, 16, 1), dict(d_norm="batch", pack=4)),
}


def _setup(case):
  arch, x_shape, model = CASES[case]
  config = _config(arch, x_shape, **model)
  family = gan.make(config, spec_lib.example(x_shape))
  x = jax.random.uniform(jax.random.key(3), (8,) + x_shape)
  return config, family, {"x": x}


def _equal(a, b):
  pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  return all(np.array_equal(u, v) for u, v in pairs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_player_update_leaves_the_other_player_untouched(case):
  config, family, batch = _setup(case)
  ts0 = jax.jit(sgd.make(family, config).init)(jax.random.key(0), batch)
  for player, other in (("d", "g"), ("g", "d")):
    alone = dataclasses.replace(family, players=(player,))
    c = ml_collections.ConfigDict(config.to_dict())
    del c.optim[other]
    trainer = sgd.make(alone, c)
    ts = jax.jit(trainer.init)(jax.random.key(0), batch)
    ts = ts.replace(params=ts0.params, state=ts0.state)
    new, metrics = jax.jit(trainer.step)(ts, batch, jax.random.key(1))
    assert np.isfinite(float(metrics["loss"]))
    assert _equal(new.params[other], ts0.params[other]), f"{player} update changed {other}"
    assert _equal(new.state[other], ts0.state[other]), f"{player} update changed {other} state"
    assert not _equal(new.params[player], ts0.params[player])
    if jax.tree.leaves(ts0.state[player]):   # BatchNorm / spectral-norm vectors move
      assert not _equal(new.state[player], ts0.state[player])


def test_full_step_runs_n_critic_updates_then_one_generator_update():
  config, family, batch = _setup("dcgan_sn_wgan_gp")
  assert family.num_updates("d") == 3 and family.num_updates("g") == 1
  trainer = sgd.make(family, config)
  ts = jax.jit(trainer.init)(jax.random.key(0), batch)
  new, metrics = jax.jit(trainer.step)(ts, batch, jax.random.key(1))
  assert {"d/loss", "g/loss", "d/gp", "d/w_estimate"} <= set(metrics)
  # Adam's first-moment count: 3 critic updates and 1 generator update.
  counts = {p: [int(v) for v in jax.tree.leaves(new.opt_state[p])
                if getattr(v, "dtype", None) == jnp.int32] for p in ("d", "g")}
  assert counts["d"][0] == 3 and counts["g"][0] == 1


def test_spectral_norm_vectors_are_state_and_sigma_tracks_the_kernel():
  config, family, batch = _setup("sngan_hinge")
  params, state = jax.jit(family.init)(jax.random.key(0), batch)
  sigmas = {k: v for k, v in jax.tree_util.tree_flatten_with_path(state["d"])[0]
            if "sigma" in jax.tree_util.keystr(k)}
  assert sigmas, "spectral-norm sigma estimates live in state['d']"
  for _ in range(30):   # power iterations through the discriminator loss
    _, (state, _) = family.loss("d", params, state, batch, jax.random.key(1))
  flat = {jax.tree_util.keystr(k): v
          for k, v in jax.tree_util.tree_flatten_with_path(state["d"])[0]}
  (sigma,) = [v for k, v in flat.items() if "out/kernel/sigma" in k]
  kernel = np.asarray(params["d"]["conv_0a"]["kernel"]).reshape(-1, 4)
  (sigma_conv,) = [v for k, v in flat.items() if "conv_0a/kernel/sigma" in k]
  np.testing.assert_allclose(sigma_conv, np.linalg.svd(kernel, compute_uv=False)[0], rtol=1e-3)
  out = np.asarray(params["d"]["out"]["kernel"])
  np.testing.assert_allclose(sigma, np.linalg.norm(out), rtol=1e-3)   # rank one: sigma = norm


@pytest.mark.parametrize("case", sorted(CASES))
def test_samples_have_the_data_shape_and_range(case):
  config, family, batch = _setup(case)
  params, state = jax.jit(family.init)(jax.random.key(0), batch)
  x = jax.jit(family.sample, static_argnums=3)(params, state, jax.random.key(1), 5)
  assert x.shape == (5,) + batch["x"].shape[1:]
  if x.ndim == 4:
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


@pytest.mark.parametrize("shape", [(2,), (4, 3, 2)])
def test_packing_concatenates_consecutive_examples_along_the_last_axis(shape):
  x = np.random.default_rng(0).normal(size=(6,) + shape).astype(np.float32)
  packed = np.asarray(gan.pack(jnp.asarray(x), 3))
  assert packed.shape == (2,) + shape[:-1] + (3 * shape[-1],)
  for i in range(2):
    np.testing.assert_array_equal(packed[i], np.concatenate(list(x[3 * i:3 * i + 3]), axis=-1))
  np.testing.assert_array_equal(gan.pack(jnp.asarray(x), 1), x)
  with pytest.raises(errors.ConfigError, match="divisible"):
    gan.pack(jnp.asarray(x), 4)


@pytest.mark.parametrize("case", ["mlp_2d_pacgan2", "dcgan_bn_pacgan4"])
def test_packed_discriminator_sees_m_samples_and_gives_one_logit_per_pack(case):
  config, family, batch = _setup(case)
  m = config.model.pack
  params, state = jax.jit(family.init)(jax.random.key(0), batch)
  _, disc = gan.make_nets(config.model, batch["x"].shape[1:])
  in_widths = [leaf.shape[-2] for leaf in jax.tree.leaves(params["d"]) if leaf.ndim >= 2]
  assert min(in_widths) == m * batch["x"].shape[-1]      # the first layer reads m samples
  x = 2.0 * batch["x"] - 1.0 if batch["x"].ndim == 4 else batch["x"]
  logits = disc.apply({"params": params["d"], "batch_stats": state["d"]}, gan.pack(x, m),
                      train=False)
  assert logits.shape == (batch["x"].shape[0] // m,)
  # eval_fn judges each example as m copies of itself: one value per example
  out = family.eval_fn(params, state, batch, jax.random.key(1))["d_logit"]
  copies = gan.pack(jnp.repeat(x[:1], m, axis=0), m)
  expected = disc.apply({"params": params["d"], "batch_stats": state["d"]}, copies, train=False)
  assert out.shape == (batch["x"].shape[0],)
  np.testing.assert_allclose(out[0], expected[0], rtol=1e-5, atol=1e-6)


def test_packing_with_gradient_penalty_or_bad_sizes_is_rejected():
  for model, match in ((dict(pack=2, loss="wasserstein", gp_weight=1.0, d_norm="none"),
                        "gradient penalty"), (dict(pack=0), "model.pack")):
    with pytest.raises(errors.ConfigError, match=match):
      gan.make(_config("mlp", (2,), **model), spec_lib.example((2,)))


def test_gradient_penalty_with_batchnorm_critic_is_rejected():
  config = _config("dcgan", (16, 16, 1), loss="wasserstein", gp_weight=10.0, d_norm="batch")
  with pytest.raises(errors.ConfigError, match="per-example"):
    gan.make(config, spec_lib.example((16, 16, 1)))


def test_unknown_choices_name_the_valid_ones():
  for key, bad in (("arch", "resnet"), ("loss", "lsgan"), ("upsample", "nearest")):
    config = _config("dcgan", (16, 16, 1))
    config.model[key] = bad
    with pytest.raises(errors.ConfigError, match=bad):
      gan.make(config, spec_lib.example((16, 16, 1)))


def test_stacked_digits_are_deterministic_and_labelled_by_their_channels():
  a = sources.load("stacked_digits", "train")
  b = stacked_mnist.stack("train", *(lambda s: (s.x, s.y))(sources.load("digits", "train")))
  assert a.x.shape == (1500, 8, 8, 3) and a.x.dtype == np.uint8
  np.testing.assert_array_equal(a.x, b[0])
  base = sources.load("digits", "train")
  # Each channel is a base image whose label is the matching digit of y.
  for i in range(20):
    for c, place in enumerate((100, 10, 1)):
      matches = np.all(base.x[..., 0] == a.x[i, ..., c], axis=(1, 2))
      assert (a.y[i] // place) % 10 in set(base.y[matches])
  assert len(np.unique(a.y)) > 500
