"""Two-dimensional toy densities, generated in memory from fixed seeds (no files).

Names follow FFJORD's toy set (Grathwohl et al. 2019) plus the GAN mode-collapse
benchmarks:
  moons         two interleaved half circles (scikit-learn's make_moons, noise
                0.1), scaled x2 and shifted by (-1, -0.2)
  8gaussians    8 Gaussians with std 0.5/1.414 on a circle of radius 4/1.414
  checkerboard  uniform on 8 of the 16 squares of a 4x4 board on [-4, 4]^2
  2spirals      two interleaved spirals of 540 degrees, noise std 0.1
  ring8         8 Gaussians, std `RING_STD`, on a ring of radius 2 (VEEGAN)
  grid25        25 Gaussians, std `GRID_STD`, on a 5x5 grid with
                spacing 2 (VEEGAN/PacGAN)
Splits: "train" (100,000 points, seed 0) and "test" (10,000 points, seed 1);
the data is continuous (`x: f32[N, 2]`, data variant "continuous").
`log_prob` gives the exact data log-density where it has a closed form, so a
model's test -log p can be compared with the best achievable value.
"""
import numpy as np

# The GAN mode-collapse mixtures (VEEGAN, PacGAN): centres and per-mode std.
RING_STD = 0.02
GRID_STD = 0.05


def ring_modes(n: int = 8, radius: float = 2.0) -> np.ndarray:
  """Centres of the ring mixture: radius * (cos 2 pi i / n, sin 2 pi i / n), f64[n, 2]."""
  angles = 2.0 * np.pi * np.arange(n) / n
  return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_modes(side: int = 5, spacing: float = 2.0) -> np.ndarray:
  """Centres of the grid mixture, centred on 0: f64[side^2, 2].

  The default is {-4, -2, 0, 2, 4}^2, row-major in (x, y).
  """
  axis = spacing * (np.arange(side) - (side - 1) / 2.0)
  xs, ys = np.meshgrid(axis, axis, indexing="ij")
  return np.stack([xs.ravel(), ys.ravel()], axis=1)


NAMES = ("moons", "8gaussians", "checkerboard", "2spirals", "ring8", "grid25")
SIZES = {"train": 100_000, "test": 10_000}
SEEDS = {"train": 0, "test": 1}


def _moons(rng, n):
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  x, _ = datasets.make_moons(n, noise=0.1, random_state=int(rng.integers(2**31)))
  return 2.0 * x + np.array([-1.0, -0.2])


def _eight_gaussians(rng, n):
  """Centers at radius 4 / 1.414, std 0.5 / 1.414 (FFJORD's scaling)."""
  angles = np.arange(8) * (np.pi / 4)
  centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], -1)
  return (centers[rng.integers(0, 8, n)] + 0.5 * rng.standard_normal((n, 2))) / 1.414


def _checkerboard(rng, n):
  """Uniform on 8 alternating squares of side 2 in [-4, 4]^2 (FFJORD's construction)."""
  x1 = rng.uniform(0.0, 1.0, n) * 4.0 - 2.0
  x2 = rng.uniform(0.0, 1.0, n) - rng.integers(0, 2, n) * 2.0 + np.floor(x1) % 2
  return 2.0 * np.stack([x1, x2], -1)


def _spirals(rng, n):
  t = np.sqrt(rng.uniform(0.0, 1.0, n)) * 3.0 * np.pi          # 540 degrees
  arm = np.where(rng.integers(0, 2, n) == 0, 1.0, -1.0)[:, None]
  d = np.stack([-np.cos(t) * t, np.sin(t) * t], -1) + 0.5 * rng.uniform(0.0, 1.0, (n, 2))
  return arm * d / 3.0 + 0.1 * rng.standard_normal((n, 2))


def _mixture(centers, std):
  def f(rng, n):
    return centers[rng.integers(0, len(centers), n)] + std * rng.standard_normal((n, 2))
  return f


GENERATORS = {
    "moons": _moons,
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "2spirals": _spirals,
    "ring8": _mixture(ring_modes(8), RING_STD),
    "grid25": _mixture(grid_modes(5), GRID_STD),
}


def _mixture_log_prob(centers, std):
  def f(x):
    d2 = ((x[:, None, :] - centers[None]) ** 2).sum(-1)            # [N, M]
    log_comp = -0.5 * d2 / std**2 - np.log(2 * np.pi * std**2)
    top = log_comp.max(-1)
    return top + np.log(np.exp(log_comp - top[:, None]).mean(-1))
  return f


def _checkerboard_log_prob(x):
  """1/32 on the 8 squares with floor(x1/2) + floor(x2/2) even inside [-4, 4)^2, else 0."""
  inside = np.all((x >= -4.0) & (x < 4.0), axis=-1)
  cell = (np.floor(x[:, 0] / 2.0) + np.floor(x[:, 1] / 2.0)) % 2 == 0
  return np.where(inside & cell, -np.log(32.0), -np.inf)


_RADIUS_8G, _STD_8G = 4.0 / 1.414, 0.5 / 1.414
LOG_PROBS = {
    "8gaussians": _mixture_log_prob(
        _RADIUS_8G * np.stack([np.cos(np.arange(8) * np.pi / 4),
                               np.sin(np.arange(8) * np.pi / 4)], -1), _STD_8G),
    "checkerboard": _checkerboard_log_prob,
    "ring8": _mixture_log_prob(ring_modes(8), RING_STD),
    "grid25": _mixture_log_prob(grid_modes(5), GRID_STD),
}


def log_prob(name: str, x: np.ndarray) -> np.ndarray | None:
  """Exact log-density of the data distribution, f64[N] in nats, or None where unknown

  (moons and 2spirals have no closed form)."""
  fn = LOG_PROBS.get(name)
  return None if fn is None else fn(np.asarray(x, np.float64))


def generate(name: str, split: str) -> np.ndarray:
  """f32[SIZES[split], 2], the same points on every call."""
  rng = np.random.default_rng((SEEDS[split], NAMES.index(name)))
  return GENERATORS[name](rng, SIZES[split]).astype(np.float32)
