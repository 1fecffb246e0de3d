"""Generative adversarial networks: two players, "d" (discriminator/critic) and "g".

One train step of the generic trainer runs `model.n_critic` discriminator
updates, then one generator update, each player with its own optimizer
(config.optim.d, config.optim.g). Losses (config.model.loss) come from
`gan_losses.LOSSES`: "nonsaturating" (Goodfellow et al. 2014), "hinge" (Miyato
et al. 2018) or "wasserstein" (Arjovsky et al. 2017), plus the WGAN-GP gradient
penalty with weight `model.gp_weight` (Gulrajani et al. 2017; 0 disables).

Architectures (config.model.arch, nets in gen_jax.nn.gan_nets):
  mlp        MLPs for 2-D data (VEEGAN/PacGAN-style mode-collapse benchmarks)
  dcgan      DCGAN (Radford et al. 2016) at 28x28, 32x32 or 64x64
  sngan_cnn  the SN-GAN "standard CNN" (Miyato et al. 2018)
`model.upsample` ("subpixel" | "transpose" | "matmul" | "mixed") and
`model.downsample` ("strided" | "s2d" | "matmul" | "mixed") choose how the
stride-2 layers are computed; the outputs and parameters are the same either
way (see gan_nets), only the speed differs. The default, "mixed" (each pass by
its fastest formulation), was the fastest on 2 CPU cores: the 64x64 DCGAN step
279-281 ms against 308 for "matmul" (benchmarks/bench_dcgan.py), the 28x28 MNIST
DCGAN step 33.6 ms against 33.9 ("matmul") and 40.0 ("subpixel"/"strided").

State. BatchNorm statistics and spectral-norm vectors are `state = {"d": ...,
"g": ...}` (flax "batch_stats" collections), checkpointed with the rest. A
discriminator update writes only state["d"] and a generator update only
state["g"]: the discriminator's normalization statistics seen during a
generator update are used (batch statistics, one power iteration) but not
kept, so neither player's update changes the other's parameters or state.

Packing (PacGAN, Lin et al. 2018): with `model.pack` = m > 1 the
discriminator judges m samples at once, all real or all fake, concatenated
along the last axis (channels for images, features for 2-D data); it then
outputs one logit per pack, f32[N/m]. Batch sizes must be divisible by m.
eval_fn feeds each example as a pack of m copies of itself.

Images: data in [0, 1] (variant "grayscale") are fed to D as 2x - 1; G ends in
tanh and `sample` returns (G(z) + 1) / 2 in [0, 1]. 2-D data (variant
"continuous") are used as they are.

Sampling uses BatchNorm running averages (inference mode) and, when
config.ema_decay > 0, the EMA of the generator's parameters.
"""
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types
from gen_jax.models import gan_losses
from gen_jax.nn import gan_nets

ARCHS = ("mlp", "dcgan", "sngan_cnn")
D_NORMS = ("batch", "layer", "none")
MUT = ["batch_stats"]           # never mutable=True: it hands back SN-normalized params


def _check(m: ml_collections.ConfigDict, x_shape: tuple, variant: str) -> None:
  for key, value, valid in (("arch", m.arch, ARCHS), ("loss", m.loss, gan_losses.LOSSES),
                            ("upsample", m.upsample, gan_nets.UPSAMPLE),
                            ("downsample", m.downsample, gan_nets.DOWNSAMPLE),
                            ("d_norm", m.d_norm, D_NORMS)):
    if value not in valid:
      raise errors.ConfigError(errors.choices(f"model.{key}", value, valid))
  if m.n_critic < 1:
    raise errors.ConfigError(f"model.n_critic must be >= 1 (got {m.n_critic})")
  if m.gp_weight < 0:
    raise errors.ConfigError(f"model.gp_weight must be >= 0 (got {m.gp_weight})")
  if m.pack < 1:
    raise errors.ConfigError(f"model.pack must be >= 1 samples per discriminator input "
                             f"(got {m.pack})")
  if m.pack > 1 and m.gp_weight > 0:
    raise errors.ConfigError("the gradient penalty is per example; it is not defined here for "
                             "packed discriminator inputs: set model.pack = 1 or gp_weight = 0")
  if m.gp_weight > 0 and m.arch == "dcgan" and m.d_norm == "batch":
    raise errors.ConfigError(
        "the gradient penalty needs per-example critic outputs; BatchNorm in the "
        "discriminator mixes examples: set model.d_norm to 'layer' or 'none'")
  images = len(x_shape) == 3
  if m.arch != "mlp" and not images:
    raise errors.ConfigError(f"model.arch {m.arch!r} needs images (got examples of shape "
                             f"{x_shape}); use 'mlp' for 2-D data")
  if images and variant not in ("grayscale", "dequantized_8bit"):
    raise errors.ConfigError(
        f"GANs on images need data.variant 'grayscale' (or 'dequantized_8bit'); got {variant!r}")


def pack(x: jax.Array, m: int) -> jax.Array:
  """PacGAN packing: f32[N, ..., C] -> f32[N/m, ..., m*C].

  Pack i holds examples i*m .. i*m + m - 1, concatenated along the last axis.
  """
  if m == 1:
    return x
  n = x.shape[0]
  if n % m:
    raise errors.ConfigError(f"a batch of {n} cannot be split into packs of model.pack={m}; "
                             "use a batch size divisible by it")
  x = x.reshape((n // m, m) + x.shape[1:])
  x = jnp.moveaxis(x, 1, -2)                      # [N/m, ..., m, C]
  return x.reshape(x.shape[:-2] + (m * x.shape[-1],))


def make_nets(m: ml_collections.ConfigDict, x_shape: tuple):
  """(generator, discriminator) flax modules for examples of shape x_shape."""
  if m.arch == "mlp":
    out = 1
    for s in x_shape:
      out *= s
    return (gan_nets.MLPGenerator(tuple(m.g_hidden), out, batch_norm=m.batch_norm),
            gan_nets.MLPDiscriminator(tuple(m.d_hidden), spectral_norm=m.spectral_norm))
  if m.arch == "dcgan":
    return (gan_nets.DCGANGenerator(tuple(x_shape), m.g_ch, m.upsample, m.batch_norm),
            gan_nets.DCGANDiscriminator(m.d_ch, m.d_norm, m.spectral_norm, m.downsample))
  return (gan_nets.SNGANGenerator(tuple(x_shape), m.g_ch, m.upsample),
          gan_nets.SNGANDiscriminator(m.d_ch, m.spectral_norm, m.downsample))


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """Builds the GAN family from `config.model` for examples of shape x_shape."""
  x_shape = tuple(spec["x"].shape)   # the image (H, W, C) or point (D,) field
  m = config.model
  x_shape = tuple(x_shape)
  _check(m, x_shape, config.data.variant)
  images = len(x_shape) == 3
  gen, disc = make_nets(m, x_shape)
  d_loss_fn, g_loss_fn = gan_losses.LOSSES[m.loss]
  d_mixes = m.arch == "dcgan" and m.d_norm == "batch"    # D has BatchNorm

  def to_model(x):
    return 2.0 * x - 1.0 if images else x

  def generate(g_params, g_stats, z, train):
    """G(z) in model space f32[N, *x_shape] and G's updated statistics."""
    if train:
      x, upd = gen.apply({"params": g_params, "batch_stats": g_stats}, z, train=True,
                         mutable=MUT)
      stats = upd.get("batch_stats", g_stats)
    else:
      x, stats = gen.apply({"params": g_params, "batch_stats": g_stats}, z, train=False), g_stats
    return x.reshape((z.shape[0],) + x_shape), stats

  def discriminate(d_params, d_stats, x):
    """D(x) in training mode: (logits f32[N / pack], updated statistics)."""
    logits, upd = disc.apply({"params": d_params, "batch_stats": d_stats}, pack(x, m.pack),
                             train=True, mutable=MUT)
    return logits, upd.get("batch_stats", d_stats)

  def init(rng, batch):
    x = to_model(batch["x"])
    r_g, r_d = jax.random.split(rng)
    g_vars = gen.init(r_g, jnp.zeros((x.shape[0], m.z_dim)), train=True)
    d_vars = disc.init(r_d, pack(jnp.repeat(x, m.pack, axis=0), m.pack), train=True)
    params = {"d": d_vars["params"], "g": g_vars["params"]}
    state = {"d": d_vars.get("batch_stats", {}), "g": g_vars.get("batch_stats", {})}
    return params, state

  def loss(player, params, state, batch, rng):
    real = to_model(batch["x"])
    rng_z, rng_gp = jax.random.split(rng)
    z = jax.random.normal(rng_z, (real.shape[0], m.z_dim))
    if player == "d":
      fake, _ = generate(params["g"], state["g"], z, train=True)
      fake = jax.lax.stop_gradient(fake)
      if d_mixes:   # BatchNorm: real and fake in separate batches, as in DCGAN
        real_logits, d_stats = discriminate(params["d"], state["d"], real)
        fake_logits, d_stats = discriminate(params["d"], d_stats, fake)
      else:
        logits, d_stats = discriminate(params["d"], state["d"],
                                       jnp.concatenate([real, fake]))
        real_logits, fake_logits = jnp.split(logits, 2)
      value = d_loss_fn(real_logits, fake_logits)
      metrics = {"real_logit": real_logits.mean(), "fake_logit": fake_logits.mean()}
      if m.gp_weight > 0:
        def critic(xx):
          return disc.apply({"params": params["d"], "batch_stats": d_stats}, xx, train=False)
        gp = gan_losses.gradient_penalty(critic, real, fake, rng_gp)
        value = value + m.gp_weight * gp
        metrics["gp"] = gp
      if m.loss == "wasserstein":
        metrics["w_estimate"] = real_logits.mean() - fake_logits.mean()
      return value, ({"d": d_stats, "g": state["g"]}, metrics)
    fake, g_stats = generate(params["g"], state["g"], z, train=True)
    fake_logits, _ = discriminate(params["d"], state["d"], fake)   # D's stats not kept
    value = g_loss_fn(fake_logits)
    return value, ({"d": state["d"], "g": g_stats}, {"fake_logit": fake_logits.mean()})

  def sample(params, state, rng, n):
    z = jax.random.normal(rng, (n, m.z_dim))
    x, _ = generate(params["g"], state["g"], z, train=False)
    return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0) if images else x

  def eval_fn(params, state, batch, rng, **kw):
    """Per-example discriminator output on data, D(x) in inference mode: f32[B].

    With packing, example x is judged as the pack of m copies of x.
    """
    del rng, kw
    x = pack(jnp.repeat(to_model(batch["x"]), m.pack, axis=0), m.pack)
    logits = disc.apply({"params": params["d"], "batch_stats": state["d"]}, x, train=False)
    return {"d_logit": logits}

  return types.Family(
      players=("d", "g"), init=init, loss=loss, sample=sample, eval_fn=eval_fn,
      updates_per_step={"d": int(m.n_critic), "g": 1},
      eval_units={"d_logit": "discriminator output on data (logit or critic value)"})


def default_model(**kw) -> ml_collections.ConfigDict:
  """A complete `config.model` section with every key stated (for experiment files)."""
  c = dict(arch="dcgan", loss="nonsaturating", gp_weight=0.0, n_critic=1, z_dim=100,
           g_hidden=(400, 400, 400, 400), d_hidden=(200, 200, 200),
           g_ch=64, d_ch=64, upsample="mixed", downsample="mixed",
           spectral_norm=False, batch_norm=True, d_norm="batch", pack=1)
  unknown = set(kw) - set(c)
  if unknown:
    raise errors.ConfigError(errors.choices("model key", sorted(unknown)[0], c))
  c.update(kw)
  return ml_collections.ConfigDict(c)

