"""GAN generators and discriminators: 2-D MLPs, DCGAN, and the SN-GAN "standard CNN".

Images are NHWC in [-1, 1] on both sides of these nets (the family maps data
in [0, 1] to [-1, 1] for the discriminator and generator outputs back).

Non-gradient variables (BatchNorm statistics, spectral-norm power-iteration
vectors `u` and estimates `sigma`) all live in the "batch_stats" collection.
Every module takes `train: bool`: with train=True BatchNorm uses batch
statistics and updates its running averages, and spectral normalization runs
one power iteration; the caller decides whether to keep the updated collection.

Upsampling (`UpConv2x`): a 4x4, stride-2, padding-1 transposed convolution
(PyTorch `ConvTranspose2d(k=4, s=2, p=1)`) with one kernel K[4, 4, c_in, c_out]
and two equivalent ways to compute it:
  "transpose"  lax.conv_general_dilated with lhs_dilation 2 (what
               ConvTranspose lowers to); its backward pass is slow on CPU.
  "subpixel"   one stride-1 3x3 conv to 4 * c_out channels whose kernel is
               gathered from K, then a pixel shuffle (Shi et al. 2016). Same
               outputs to float rounding; ~10x faster backward on CPU.
  "matmul"     each output phase reads only a 2x2 window of the input, so all
               four phases are one matmul of the 2x2 patches (4 * c_in) with a
               [4 * c_in, 4 * c_out] kernel gathered from K: the transposed
               conv's own FLOPs (the 3x3 "subpixel" kernel is 5/9 zeros) and
               XLA:CPU's matmul instead of its convolution.
  "mixed"      each pass by the formulation XLA:CPU runs fastest: the forward
               and input gradient as "transpose", the kernel gradient as
               "matmul" (a custom VJP; the lhs-dilated conv's own kernel
               gradient is the slow part).
All read the same parameter, so a checkpoint trained with one runs with the
others. Downsampling convs (`DownConv2x`, PyTorch `Conv2d(k=4, s=2, p=1)`) have
the matching choice: "strided", "s2d" (space-to-depth then a stride-1 2x2
conv), "matmul" (space-to-depth, 2x2 patches, one matmul) or "mixed" (forward
and kernel gradient strided, input gradient as "matmul"), again with one
shared kernel.
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

UPSAMPLE = ("subpixel", "transpose", "matmul", "mixed")
DOWNSAMPLE = ("strided", "s2d", "matmul", "mixed")
# "mixed": (forward, input gradient, kernel gradient) formulations.
_MIXED_UP = ("transpose", "transpose", "matmul")
_MIXED_DOWN = ("strided", "matmul", "strided")

# DCGAN's N(0, 0.02) weight init (Radford et al. 2016).
DCGAN_INIT = nn.initializers.normal(0.02)

# Output phase a (0: even rows, 1: odd rows) and 3x3-conv offset d + 1 -> index
# into the 4 taps of the transposed kernel; 4 is an all-zero tap. From
# out[2i + a] = sum_j in[j] K[2(i - j) + a + 1] (stride 2, padding 1).
_PHASE_TAPS = np.array([[3, 1, 4], [4, 2, 0]])
# Stride-2 conv as a 2x2 conv on space-to-depth input: output i reads padded rows
# 2i + k, k = 2 * d + r for block offset d in {0, 1} and phase r in {0, 1}.
_S2D_TAPS = np.array([[0, 1], [2, 3]])    # [d, r] -> k
# Transposed conv as one 2x2 VALID conv on the input padded by 1: output phase a
# at row i reads padded rows i + a + d, d in {0, 1}, with tap [a, d] of K.
_MATMUL_TAPS = np.array([[3, 1], [2, 0]])


def _patches_2x2(x: jax.Array, h: int, w: int) -> jax.Array:
  """f32[B, H', W', C] -> f32[B, h, w, (2, 2, C)]: every 2x2 window with top-left (i, j)."""
  return jnp.concatenate([x[:, dy:dy + h, dx:dx + w] for dy in range(2) for dx in range(2)],
                         axis=-1)


def maybe_sn(layer: nn.Module, spectral_norm: bool):
  """Wraps `layer` in flax's SpectralNorm (1 power iteration per train call) if asked.

  The returned callable takes (x, train): SpectralNorm needs `update_stats`.
  """
  if not spectral_norm:
    return lambda x, train: layer(x)
  wrapped = nn.SpectralNorm(layer, n_steps=1)
  return lambda x, train: wrapped(x, update_stats=train)


def transposed_kernel_to_subpixel(k: jax.Array) -> jax.Array:
  """K[4, 4, c_in, c_out] (stride-2 transposed conv) -> W[3, 3, c_in, 4 * c_out].

  W's output channels are ordered (a_row, a_col, c_out), matching
  `pixel_shuffle` below.
  """
  kpad = jnp.pad(k, ((0, 1), (0, 1), (0, 0), (0, 0)))          # tap 4 is zero
  taps = jnp.asarray(_PHASE_TAPS)                              # [2 phases, 3 offsets]
  # w[ay, dy, ax, dx, ci, co] = kpad[taps[ay, dy], taps[ax, dx], ci, co]
  w = kpad[taps[:, :, None, None], taps[None, None, :, :]]
  w = jnp.transpose(w, (1, 3, 4, 0, 2, 5))                    # [dy, dx, ci, ay, ax, co]
  return w.reshape(3, 3, k.shape[2], 4 * k.shape[3])


def pixel_shuffle(x: jax.Array) -> jax.Array:
  """f32[B, H, W, (2, 2, C)] -> f32[B, 2H, 2W, C], channel order (row phase, col phase, c)."""
  b, h, w, c4 = x.shape
  c = c4 // 4
  x = x.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c)


def _mixed(op, impls: tuple[str, str, str]):
  """op(x, k, impl) with its forward, input gradient and kernel gradient each by one impl."""
  forward, dx_impl, dk_impl = impls

  @jax.custom_vjp
  def f(x, k):
    return op(x, k, forward)

  def fwd(x, k):
    return op(x, k, forward), (x, k)

  def bwd(res, g):
    x, k = res
    dx = jax.vjp(lambda x: op(x, k, dx_impl), x)[1](g)[0]
    dk = jax.vjp(lambda k: op(x, k, dk_impl), k)[1](g)[0]
    return dx, dk
  f.defvjp(fwd, bwd)
  return f


def conv_transpose_2x(x: jax.Array, k: jax.Array, impl: str) -> jax.Array:
  """PyTorch ConvTranspose2d(k=4, s=2, p=1, bias=False): f32[B, H, W, Ci] -> f32[B, 2H, 2W, Co].

  Args:
    x: input, NHWC.
    k: K[4, 4, c_in, c_out] with out[2i - 1 + t] += in[i] K[t] along each axis.
    impl: one of UPSAMPLE (see the module docstring).
  """
  dn = ("NHWC", "HWIO", "NHWC")
  if impl == "mixed":
    return _mixed_up(x, k)
  if impl == "transpose":
    # A transposed conv is the conv of the 2x-dilated input with the flipped
    # kernel, padded by k - 1 - p = 2 on each side.
    return jax.lax.conv_general_dilated(
        x, k[::-1, ::-1], window_strides=(1, 1), padding=((2, 2), (2, 2)),
        lhs_dilation=(2, 2), dimension_numbers=dn)
  if impl == "subpixel":
    y = jax.lax.conv_general_dilated(
        x, transposed_kernel_to_subpixel(k), window_strides=(1, 1),
        padding=((1, 1), (1, 1)), dimension_numbers=dn)
    return pixel_shuffle(y)
  if impl == "matmul":
    b, h, w, ci = x.shape
    co = k.shape[3]
    taps = jnp.asarray(_MATMUL_TAPS)
    # w2[dy, dx, ci, ay, ax, co] = k[taps[ay, dy], taps[ax, dx], ci, co]
    w2 = k[taps[:, :, None, None], taps[None, None, :, :]]        # [ay, dy, ax, dx, ci, co]
    w2 = jnp.transpose(w2, (1, 3, 4, 0, 2, 5)).reshape(4 * ci, 4 * co)
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = (_patches_2x2(xp, h + 1, w + 1).reshape(-1, 4 * ci) @ w2)
    y = y.reshape(b, h + 1, w + 1, 2, 2, co)
    # phase (ay, ax) at output (2i + ay, 2j + ax) is y[i + ay, j + ax, ay, ax]
    rows = [jnp.stack([y[:, ay:ay + h, ax:ax + w, ay, ax] for ax in range(2)], axis=3)
            for ay in range(2)]                                   # [B, H, W, ax, C] each
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, co)
  raise ValueError(f"unknown upsampling {impl!r}; choices: {UPSAMPLE}")


def conv_stride2(x: jax.Array, k: jax.Array, impl: str) -> jax.Array:
  """PyTorch Conv2d(k=4, s=2, p=1, bias=False): f32[B, H, W, Ci] -> f32[B, H/2, W/2, Co].

  Args:
    x: input, NHWC with even H and W.
    k: K[4, 4, c_in, c_out] (cross-correlation, as lax.conv).
    impl: one of DOWNSAMPLE (see the module docstring).
  """
  dn = ("NHWC", "HWIO", "NHWC")
  if impl == "mixed":
    return _mixed_down(x, k)
  if impl == "strided":
    return jax.lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=dn)
  if impl in ("s2d", "matmul"):
    b, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    hb, wb = (h + 2) // 2, (w + 2) // 2
    xs = xp.reshape(b, hb, 2, wb, 2, c).transpose(0, 1, 3, 2, 4, 5)
    xs = xs.reshape(b, hb, wb, 4 * c)                          # channels (ry, rx, c)
    taps = jnp.asarray(_S2D_TAPS)
    # w2[dy, dx, ry, rx, ci, co] = k[taps[dy, ry], taps[dx, rx], ci, co]
    w2 = k[taps[:, None, :, None], taps[None, :, None, :]]
    w2 = w2.reshape(2, 2, 4 * c, k.shape[3])
    if impl == "matmul":
      patches = _patches_2x2(xs, h // 2, w // 2)                # [B, H/2, W/2, (dy, dx, 4c)]
      return (patches.reshape(-1, 16 * c) @ w2.reshape(16 * c, k.shape[3])).reshape(
          b, h // 2, w // 2, k.shape[3])
    return jax.lax.conv_general_dilated(xs, w2, (1, 1), "VALID", dimension_numbers=dn)
  raise ValueError(f"unknown downsampling {impl!r}; choices: {DOWNSAMPLE}")


_mixed_up = _mixed(conv_transpose_2x, _MIXED_UP)
_mixed_down = _mixed(conv_stride2, _MIXED_DOWN)


class UpConv2x(nn.Module):
  """2x upsampling by a 4x4 stride-2 transposed conv; see `conv_transpose_2x`."""
  features: int
  impl: str = "subpixel"
  use_bias: bool = False
  kernel_init: nn.initializers.Initializer = DCGAN_INIT

  @nn.compact
  def __call__(self, x):
    k = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
    y = conv_transpose_2x(x, k, self.impl)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


class DownConv2x(nn.Module):
  """2x downsampling by a 4x4 stride-2 conv with padding 1; see `conv_stride2`."""
  features: int
  impl: str = "strided"
  use_bias: bool = False
  kernel_init: nn.initializers.Initializer = DCGAN_INIT

  @nn.compact
  def __call__(self, x):
    k = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
    y = conv_stride2(x, k, self.impl)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


def _bn(train: bool, name: str):
  # momentum 0.9: the running averages follow the generator within ~10 steps
  # (PyTorch's default), so short runs sample with current statistics.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


class MLPGenerator(nn.Module):
  """z: f32[N, z_dim] -> x: f32[N, out_dim]; ReLU hidden layers, linear output."""
  hidden: Sequence[int]
  out_dim: int
  batch_norm: bool = False

  @nn.compact
  def __call__(self, z, train: bool = True):
    h = z
    for i, f in enumerate(self.hidden):
      h = nn.Dense(f, name=f"dense_{i}")(h)
      if self.batch_norm:
        h = _bn(train, f"bn_{i}")(h)
      h = jax.nn.relu(h)
    return nn.Dense(self.out_dim, name="out")(h)


class MLPDiscriminator(nn.Module):
  """x: f32[N, D] -> f32[N] logits; leaky-ReLU(0.2) hidden layers."""
  hidden: Sequence[int]
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x, train: bool = True):
    h = x.reshape(x.shape[0], -1)
    for i, f in enumerate(self.hidden):
      h = jax.nn.leaky_relu(maybe_sn(nn.Dense(f, name=f"dense_{i}"), self.spectral_norm)(h, train),
                            0.2)
    return maybe_sn(nn.Dense(1, name="out"), self.spectral_norm)(h, train)[:, 0]


def _base_size(size: int, n_up: int) -> int:
  if size % (2 ** n_up):
    raise ValueError(f"image side {size} is not divisible by 2^{n_up}")
  return size // 2 ** n_up


def num_upsamples(image_shape: Sequence[int]) -> int:
  """Stride-2 stages between the base grid and the image: 28 -> 7 (2), 32 -> 4 (3), 64 -> 4 (4)."""
  h = image_shape[0]
  n = 0
  while h % 2 == 0 and h // 2 >= 4:
    h //= 2
    n += 1
  return n


class DCGANGenerator(nn.Module):
  """DCGAN generator (Radford et al. 2016; pytorch/examples' netG at 64x64).

  z: f32[N, z_dim] -> f32[N, H, W, C] in [-1, 1]. A bias-free dense layer
  (PyTorch's first 4x4 ConvTranspose from 1x1) to a s0 x s0 x (ch * 2^(n-1))
  grid, then n UpConv2x stages halving the channels, the last to C channels;
  BatchNorm + ReLU between, tanh at the end.
  """
  image_shape: Sequence[int]
  ch: int = 64
  upsample: str = "subpixel"
  batch_norm: bool = True

  @nn.compact
  def __call__(self, z, train: bool = True):
    h_img, _, c_img = self.image_shape
    n = num_upsamples(self.image_shape)
    s0 = _base_size(h_img, n)
    c0 = self.ch * 2 ** (n - 1)
    h = nn.Dense(s0 * s0 * c0, use_bias=not self.batch_norm, kernel_init=DCGAN_INIT,
                 name="project")(z)
    h = h.reshape(z.shape[0], s0, s0, c0)
    for i in range(n):
      if self.batch_norm:
        h = _bn(train, f"bn_{i}")(h)
      h = jax.nn.relu(h)
      last = i == n - 1
      # Bias-free like pytorch/examples' netG (BatchNorm follows every layer but the last).
      h = UpConv2x(c_img if last else c0 // 2 ** (i + 1), self.upsample,
                   use_bias=not self.batch_norm, name=f"up_{i}")(h)
    return jnp.tanh(h)


class DCGANDiscriminator(nn.Module):
  """DCGAN discriminator: f32[N, H, W, C] -> f32[N] logits.

  n DownConv2x stages doubling the channels from `ch` (no BatchNorm on the
  first, as in the paper), leaky-ReLU(0.2), then a dense layer to one logit
  (PyTorch's last 4x4 valid conv). BatchNorm mixes examples in a batch, so the
  WGAN-GP configs turn it off (gan_losses.gradient_penalty needs per-example
  outputs); LayerNorm is the per-example alternative.
  """
  ch: int = 64
  norm: str = "batch"            # "batch" | "layer" | "none"
  spectral_norm: bool = False
  downsample: str = "strided"

  @nn.compact
  def __call__(self, x, train: bool = True):
    n = num_upsamples(x.shape[1:])
    h = x
    for i in range(n):
      conv = DownConv2x(self.ch * 2 ** i, self.downsample, use_bias=self.norm == "none",
                        name=f"down_{i}")
      h = maybe_sn(conv, self.spectral_norm)(h, train)
      if i > 0 and self.norm == "batch":
        h = _bn(train, f"bn_{i}")(h)
      elif i > 0 and self.norm == "layer":
        h = nn.LayerNorm(name=f"ln_{i}")(h)
      h = jax.nn.leaky_relu(h, 0.2)
    h = h.reshape(h.shape[0], -1)
    out = nn.Dense(1, use_bias=False, kernel_init=DCGAN_INIT, name="out")
    return maybe_sn(out, self.spectral_norm)(h, train)[:, 0]


class SNGANGenerator(nn.Module):
  """SN-GAN "standard CNN" generator (Miyato et al. 2018, Table 3 (a)).

  z -> dense s0 x s0 x 8ch -> n x [BN, ReLU, UpConv2x halving channels]
  -> BN, ReLU, 3x3 conv to C -> tanh. ch = 64 gives the paper's 512-256-128-64
  at 32x32.
  """
  image_shape: Sequence[int]
  ch: int = 64
  upsample: str = "subpixel"

  @nn.compact
  def __call__(self, z, train: bool = True):
    h_img, _, c_img = self.image_shape
    n = num_upsamples(self.image_shape)
    s0 = _base_size(h_img, n)
    c = self.ch * 8
    h = nn.Dense(s0 * s0 * c, kernel_init=DCGAN_INIT, name="project")(z)
    h = h.reshape(z.shape[0], s0, s0, c)
    for i in range(n):
      h = jax.nn.relu(_bn(train, f"bn_{i}")(h))
      c //= 2
      h = UpConv2x(c, self.upsample, use_bias=True, name=f"up_{i}")(h)
    h = jax.nn.relu(_bn(train, f"bn_{n}")(h))
    h = nn.Conv(c_img, (3, 3), padding=1, kernel_init=DCGAN_INIT, name="out")(h)
    return jnp.tanh(h)


class SNGANDiscriminator(nn.Module):
  """SN-GAN "standard CNN" discriminator (Miyato et al. 2018, Table 3 (b)).

  Per stage i < n: 3x3 stride-1 conv (ch * 2^i), leaky-ReLU(0.1), 4x4 stride-2
  conv (ch * 2^i), leaky-ReLU(0.1); then a 3x3 conv (ch * 2^n), leaky-ReLU and
  a dense layer to one logit. Spectral normalization on every layer; ch = 64
  gives the paper's 64-64-128-128-256-256-512 at 32x32. No BatchNorm.
  """
  ch: int = 64
  spectral_norm: bool = True
  downsample: str = "strided"

  @nn.compact
  def __call__(self, x, train: bool = True):
    n = num_upsamples(x.shape[1:])
    sn = self.spectral_norm
    h = x
    for i in range(n):
      c = self.ch * 2 ** i
      h = jax.nn.leaky_relu(maybe_sn(nn.Conv(c, (3, 3), padding=1, name=f"conv_{i}a"), sn)(
          h, train), 0.1)
      h = jax.nn.leaky_relu(maybe_sn(DownConv2x(c, self.downsample, use_bias=True,
                                                kernel_init=nn.initializers.lecun_normal(),
                                                name=f"conv_{i}b"), sn)(h, train), 0.1)
    h = jax.nn.leaky_relu(maybe_sn(nn.Conv(self.ch * 2 ** n, (3, 3), padding=1,
                                           name=f"conv_{n}"), sn)(h, train), 0.1)
    h = h.reshape(h.shape[0], -1)
    return maybe_sn(nn.Dense(1, name="out"), sn)(h, train)[:, 0]
