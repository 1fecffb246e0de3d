"""Mode-collapse diagnostics: 2-D Gaussian mixtures, stacked MNIST and class balance.

Synthetic mixtures (equal weights, isotropic components; their centres and
stds live with the data, `gen_jax.data.toy2d.ring_modes`, `grid_modes`,
`RING_STD`, `GRID_STD`): the std is not part of the centres, so pass the same
value to `sample_mixture` and `mode_stats`.

`mode_stats` follows VEEGAN and PacGAN: each sample goes to its nearest
centre; it is high quality if it lies within `threshold` (3) stds of that
centre (strictly, as in PacGAN's code), and a mode is covered if it receives at
least `min_count` high-quality samples (1 in both papers).

Stacked MNIST (Metz et al. 2016; VEEGAN; PacGAN) stacks three MNIST digits as
the channels of one image, giving 1000 modes; a pretrained classifier labels
each channel of a generated image and `stacked_mnist_modes` counts the modes
and the KL from the empirical mode distribution to uniform. KLs are
KL(p_hat || uniform) in nats: finite even when modes are missing (the other
direction is infinite then).
"""
import jax
import jax.numpy as jnp
import numpy as np

STACKED_MNIST_MODES = 1000


def sample_mixture(rng: jax.Array, centers, std: float, n: int) -> jax.Array:
  """n samples of the equal-weight mixture of N(center_k, std^2 I): f32[n, D].

  Args:
    rng: PRNG key.
    centers: f[K, D] component means (e.g. `ring_modes()`).
    std: per-coordinate standard deviation of every component.
    n: number of samples.
  """
  centers = jnp.asarray(centers, jnp.float32)
  k_rng, n_rng = jax.random.split(rng)
  idx = jax.random.randint(k_rng, (n,), 0, centers.shape[0])
  return centers[idx] + std * jax.random.normal(n_rng, (n, centers.shape[1]))


def mode_stats(samples, centers, std: float, threshold: float = 3.0,
               min_count: int = 1) -> dict:
  """Mode coverage and sample quality of generated points against known centres.

  Args:
    samples: f[N, D] generated points.
    centers: f[K, D] mixture means.
    std: the components' standard deviation (same for every component).
    threshold: a sample is high quality if its distance to the nearest centre
      is < threshold * std.
    min_count: a mode is covered if at least this many high-quality samples
      are assigned to it (1 in VEEGAN and PacGAN).

  Returns:
    dict(modes_covered: int (out of K), high_quality_fraction: float (over all
    N samples), counts: i64[K] high-quality samples per mode).
  """
  x = np.asarray(samples, np.float64)
  c = np.asarray(centers, np.float64)
  if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
    raise ValueError(f"samples and centers must be f[N, D] and f[K, D] "
                     f"(got {x.shape} and {c.shape})")
  if x.shape[0] == 0:
    raise ValueError("no samples")
  # One centre at a time keeps memory at [N, K], not [N, K, D].
  dist = np.stack([np.linalg.norm(x - ck, axis=1) for ck in c], axis=1)    # [N, K]
  nearest = dist.argmin(axis=1)
  good = dist[np.arange(x.shape[0]), nearest] < threshold * std
  counts = np.bincount(nearest[good], minlength=c.shape[0])
  return {"modes_covered": int((counts >= min_count).sum()),
          "high_quality_fraction": float(good.mean()),
          "counts": counts}


def _kl_to_uniform(counts: np.ndarray) -> float:
  """KL(counts / sum || uniform over len(counts)) in nats."""
  p = counts / counts.sum()
  nz = p > 0
  return float(np.sum(p[nz] * np.log(p[nz] * len(counts))))


def _int_labels(labels, num_classes: int, name: str) -> np.ndarray:
  raw = np.asarray(labels)
  out = np.rint(raw).astype(np.int64)
  if not np.array_equal(out, raw):
    raise ValueError(f"{name} must hold whole numbers")
  if out.size == 0:
    raise ValueError(f"{name} is empty")
  if out.min() < 0 or out.max() >= num_classes:
    raise ValueError(f"{name} must lie in [0, {num_classes - 1}] "
                     f"(got {out.min()}..{out.max()})")
  return out


def class_balance(labels, num_classes: int) -> dict:
  """Histogram of predicted classes and its KL to uniform.

  Args:
    labels: i32/f32[N] class ids in [0, num_classes).
    num_classes: C.

  Returns:
    dict(histogram: i64[C] counts, kl_to_uniform: KL(p_hat || U_C) in nats,
    0 when balanced, ln C when every label is one class).
  """
  labels = _int_labels(labels, num_classes, "labels").reshape(-1)
  counts = np.bincount(labels, minlength=num_classes)
  return {"histogram": counts, "kl_to_uniform": _kl_to_uniform(counts)}


def stacked_mnist_modes(digit_labels, min_count: int = 1) -> dict:
  """Modes of stacked MNIST reached by generated samples.

  Args:
    digit_labels: i32/f32[N, 3] classifier digits for the three channels;
      mode = 100 * d0 + 10 * d1 + d2.
    min_count: a mode is covered if it gets at least this many samples (1 in
      Metz et al., VEEGAN and PacGAN).

  Returns:
    dict(modes_covered: int out of 1000, kl_to_uniform: KL(p_hat || U_1000)
    in nats, counts: i64[1000]).
  """
  d = _int_labels(digit_labels, 10, "digit_labels")
  if d.ndim != 2 or d.shape[1] != 3:
    raise ValueError(f"digit_labels must be [N, 3] (got {d.shape})")
  counts = np.bincount(d @ np.array([100, 10, 1]), minlength=STACKED_MNIST_MODES)
  return {"modes_covered": int((counts >= min_count).sum()),
          "kl_to_uniform": _kl_to_uniform(counts), "counts": counts}

