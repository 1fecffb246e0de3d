"""PSNR, SSIM and the median filter against scikit-image and SciPy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from skimage import metrics as skm

from gen_jax import errors
from gen_jax.data import sources
from gen_jax.metrics import image_quality as iq


def _structured(h: int, w: int) -> np.ndarray:
  """f64[6, h, w, 1]: constant, ramp, checkerboard, disc, stripes, a digit-sized blob."""
  i, j = np.mgrid[:h, :w].astype(np.float64)
  imgs = [np.full((h, w), 0.4),
          (i + j) / (h + w - 2),
          ((i + j) % 2).astype(np.float64),
          (((i - h / 2) ** 2 + (j - w / 2) ** 2) < (min(h, w) / 3) ** 2).astype(np.float64),
          0.5 + 0.5 * np.sin(j / 1.7),
          np.exp(-((i - h / 3) ** 2 + (j - w / 2) ** 2) / 8.0)]
  return np.stack(imgs)[..., None]


def _pairs(seed: int, shape) -> list[tuple[np.ndarray, np.ndarray]]:
  """(x, y) batches f64[B, H, W, C] in [0, 1]: random, structured vs noisy/ negated /
  shifted copies, and real digits vs their noisy versions."""
  rng = np.random.default_rng(seed)
  b, h, w, c = shape
  out = [(rng.random(shape), rng.random(shape))]
  x = rng.random(shape)
  out.append((x, np.clip(x + 0.1 * rng.normal(size=shape), 0, 1)))
  if c == 1:
    s = _structured(h, w)
    out.append((s, np.clip(s + 0.2 * rng.normal(size=s.shape), 0, 1)))
    out.append((s, 1.0 - s))                                   # negative correlation
    out.append((s, np.roll(s, 2, axis=2)))
    digits = sources.load("digits", "test").x[:8].astype(np.float64) / 255.0
    out.append((digits, np.clip(digits + 0.3 * rng.normal(size=digits.shape), 0, 1)))
  return out


def _sk_ssim(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """scikit-image's SSIM per image (grayscale as 2-D arrays, colour with channel_axis)."""
  if x.shape[-1] == 1:
    return np.array([skm.structural_similarity(a[..., 0], b[..., 0], data_range=1.0)
                     for a, b in zip(x, y, strict=True)])
  return np.array([skm.structural_similarity(a, b, data_range=1.0, channel_axis=-1)
                   for a, b in zip(x, y, strict=True)])


@pytest.mark.parametrize("shape", [(5, 8, 8, 1), (4, 28, 28, 1), (3, 16, 12, 3)])
def test_psnr_and_ssim_equal_scikit_image(shape):
  psnr, ssim = jax.jit(iq.psnr), jax.jit(iq.ssim)
  for seed, (x, y) in enumerate(_pairs(shape[1], shape)):
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    with np.errstate(divide="ignore"):     # a shifted constant image is its own copy: +inf
      ref_psnr = [skm.peak_signal_noise_ratio(a, b, data_range=1.0)
                  for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(psnr(xj, yj), ref_psnr, rtol=1e-5, err_msg=f"pair {seed}")
    got = ssim(xj, yj)
    assert got.shape == (len(x),) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, _sk_ssim(x, y), atol=1e-5, err_msg=f"pair {seed}")


def test_identical_images_give_infinite_psnr_and_unit_ssim():
  x = jnp.asarray(np.random.default_rng(0).random((3, 9, 9, 2)), jnp.float32)
  assert np.all(np.isposinf(iq.psnr(x, x)))
  np.testing.assert_allclose(iq.ssim(x, x), 1.0, atol=1e-6)
  # data_range rescales PSNR by 20 log10(R): the same images on the 0..255 scale.
  y = x + 0.05
  np.testing.assert_allclose(iq.psnr(255 * x, 255 * y, data_range=255.0), iq.psnr(x, y),
                             rtol=1e-4)


def test_batched_values_are_the_per_image_values():
  x, y = (jnp.asarray(v, jnp.float32) for v in _pairs(1, (6, 10, 11, 1))[1])
  one = np.array([iq.ssim(x[i:i + 1], y[i:i + 1])[0] for i in range(6)])
  np.testing.assert_allclose(iq.ssim(x, y), one, rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 8, 8, 1), (3, 13, 10, 3)])
def test_median_filter_equals_scipy_per_image_and_channel(shape):
  rng = np.random.default_rng(1)
  x = rng.random(shape).astype(np.float32)
  x[0] = (rng.random(shape[1:]) < 0.2).astype(np.float32)     # salt on zeros: many ties
  got = np.asarray(jax.jit(iq.median_filter)(jnp.asarray(x)))
  for b in range(shape[0]):
    for c in range(shape[-1]):
      np.testing.assert_array_equal(got[b, ..., c], ndimage.median_filter(x[b, ..., c], size=3))
  np.testing.assert_array_equal(iq.median_filter(jnp.asarray(x), size=1), x)


def test_bad_inputs_are_one_line_errors():
  x = jnp.zeros((2, 6, 6, 1))
  with pytest.raises(errors.ConfigError, match="at least that size"):
    iq.ssim(x, x)
  with pytest.raises(errors.ConfigError, match="of one shape"):
    iq.psnr(x, jnp.zeros((2, 6, 5, 1)))
  with pytest.raises(errors.ConfigError, match="odd"):
    iq.median_filter(x, size=2)
