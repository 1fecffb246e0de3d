"""Full-reference image quality: PSNR, SSIM and the median-filter baseline, in JAX.

Images are f32[B, H, W, C] on a scale whose span is `data_range` (1.0 for
[0, 1] images); every function is batched over B and jit-able, and returns
one value per image.

The definitions are scikit-image's (`skimage.metrics.peak_signal_noise_ratio`
and `structural_similarity` with their defaults), which the tests check to
~1e-5:
  PSNR = 10 log10(data_range^2 / MSE) dB, MSE over all H*W*C values; +inf for
    identical images.
  SSIM (Wang et al. 2004, with scikit-image's defaults): 7x7 uniform windows,
    K1 = 0.01, K2 = 0.03, sample (N - 1) covariances, and the mean of the SSIM
    map over the valid interior (window centres at least 3 pixels from the
    border: scikit-image filters with a reflected border, then crops it);
    with C > 1 channels, each channel separately and then the mean over
    channels (scikit-image's `channel_axis`).
"""
import jax
import jax.numpy as jnp

from gen_jax import errors


def _check(x: jax.Array, y: jax.Array, win_size: int = 1) -> None:
  if x.shape != y.shape or x.ndim != 4:
    raise errors.ConfigError(
        f"image quality needs two f32[B, H, W, C] batches of one shape (got {x.shape} and "
        f"{y.shape})")
  if x.shape[1] < win_size or x.shape[2] < win_size:
    raise errors.ConfigError(
        f"SSIM with a {win_size}x{win_size} window needs images of at least that size (got "
        f"{x.shape[1]}x{x.shape[2]})")


def psnr(x: jax.Array, y: jax.Array, data_range: float = 1.0) -> jax.Array:
  """Peak signal-to-noise ratio per image, dB: f32[B] (+inf where x == y).

  Args:
    x: f32[B, H, W, C] reference images.
    y: f32[B, H, W, C] test images (PSNR is symmetric in x and y).
    data_range: max - min of the intensity scale (1.0 for [0, 1] images).
  """
  _check(x, y)
  mse = jnp.mean(jnp.square(x.astype(jnp.float32) - y.astype(jnp.float32)), axis=(1, 2, 3))
  return 10.0 * jnp.log10(data_range ** 2 / mse)


def _window_mean(a: jax.Array, win: int) -> jax.Array:
  """Means over every win x win window fully inside the image: f32[B, H-win+1, W-win+1, C]."""
  total = jax.lax.reduce_window(a, 0.0, jax.lax.add, (1, win, win, 1), (1, 1, 1, 1), "VALID")
  return total / (win * win)


def ssim(x: jax.Array, y: jax.Array, data_range: float = 1.0, win_size: int = 7,
         k1: float = 0.01, k2: float = 0.03) -> jax.Array:
  """Mean structural similarity per image (scikit-image's defaults): f32[B] in [-1, 1].

  Args:
    x: f32[B, H, W, C] reference images, H and W >= win_size.
    y: f32[B, H, W, C] test images (SSIM is symmetric in x and y).
    data_range: max - min of the intensity scale (1.0 for [0, 1] images).
    win_size: odd side of the uniform window (scikit-image: 7).
    k1, k2: the stabilizing constants, C1 = (k1 R)^2, C2 = (k2 R)^2.
  """
  if win_size % 2 != 1:
    raise errors.ConfigError(f"SSIM win_size must be odd (got {win_size})")
  _check(x, y, win_size)
  x, y = x.astype(jnp.float32), y.astype(jnp.float32)
  n = win_size * win_size
  cov_norm = n / (n - 1.0)                      # sample covariance, as scikit-image
  mu_x, mu_y = _window_mean(x, win_size), _window_mean(y, win_size)
  # (Co)variances do not change when x or y is shifted by a constant: centring
  # each image first keeps E[x^2] - E[x]^2 from cancelling in float32.
  xc = x - x.mean(axis=(1, 2), keepdims=True)
  yc = y - y.mean(axis=(1, 2), keepdims=True)
  mxc, myc = _window_mean(xc, win_size), _window_mean(yc, win_size)
  var_x = cov_norm * (_window_mean(xc * xc, win_size) - mxc * mxc)
  var_y = cov_norm * (_window_mean(yc * yc, win_size) - myc * myc)
  cov_xy = cov_norm * (_window_mean(xc * yc, win_size) - mxc * myc)
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  s = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
      (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
  # Every channel's interior has the same size: the mean over (h, w, c) is the
  # mean over channels of the per-channel means.
  return s.mean(axis=(1, 2, 3))


def median_filter(x: jax.Array, size: int = 3) -> jax.Array:
  """Per-image, per-channel size x size median filter: f32[B, H, W, C].

  The border is reflected about the edge (d c b a | a b c d), as
  `scipy.ndimage.median_filter`'s default mode "reflect", so each image equals
  `scipy.ndimage.median_filter(x[b, ..., c], size)`. The denoising baseline.
  """
  if size < 1 or size % 2 != 1:
    raise errors.ConfigError(f"median filter size must be odd and >= 1 (got {size})")
  if x.ndim != 4:
    raise errors.ConfigError(f"median filter needs f32[B, H, W, C] images (got {x.shape})")
  r, (h, w) = size // 2, x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="symmetric")
  # size^2 shifted views (unrolled once at trace time), then the middle order statistic.
  views = [padded[:, i:i + h, j:j + w] for i in range(size) for j in range(size)]
  return jnp.median(jnp.stack(views, axis=-1), axis=-1)
