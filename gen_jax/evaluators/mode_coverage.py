"""Mode-collapse evaluators: 2-D Gaussian mixtures and Stacked-MNIST.

type "modes" (ring8 / grid25 runs; VEEGAN and PacGAN protocol):
  mixture: "ring8" | "grid25" ("" = config.data.name); num_samples (2,500 in
  VEEGAN/PacGAN); threshold: a sample is high quality within threshold * std
  (3) of its nearest centre; a mode is covered with >= min_count (1) of them.
  Results `<name>/modes_covered` (of 8 or 25), `<name>/high_quality_fraction`
  and `<name>/counts` (high-quality samples per mode, as text).

type "stacked_mnist_modes" (Metz et al. 2016; VEEGAN; PacGAN):
  classifier_workdir / classifier_config: the digit classifier (see
  gen_jax.evaluators.feature_space); num_samples (26,000 in PacGAN);
  batch_size. Each channel of a generated 3-channel image is classified;
  results `<name>/modes_covered` (of 1000) and `<name>/kl_to_uniform` (nats,
  KL(p_hat || uniform over 1000 modes)), plus the per-channel class balance.
"""
import numpy as np

from gen_jax import errors
from gen_jax.data import toy2d
from gen_jax.metrics import modes

MIXTURES = {
    "ring8": (lambda: toy2d.ring_modes(8), toy2d.RING_STD),
    "grid25": (lambda: toy2d.grid_modes(5), toy2d.GRID_STD),
}


def generated(ctx, name: str, n: int, batch: int = 0) -> np.ndarray:
  """n samples from the checkpoint's generator (EMA params when present), on the host."""
  out, batch = [], min(batch or n, n)
  for i in range(0, n, batch):
    out.append(ctx.samples(ctx.key(name, i), batch))
  return np.concatenate(out)[:n]


def prerequisites(ec) -> list:
  """The digit classifier run for Stacked-MNIST (see feature_space.prerequisites)."""
  if ec.type != "stacked_mnist_modes":
    return []
  from gen_jax.evaluators import feature_space  # pylint: disable=g-import-not-at-top
  return feature_space.prerequisites(ec)


def evaluate(ctx, name: str, ec) -> dict:
  if ec.type == "stacked_mnist_modes":
    return _stacked(ctx, name, ec)
  mixture = ec.get("mixture", "") or ctx.data.name
  if mixture not in MIXTURES:
    raise errors.ConfigError(errors.choices("modes mixture", mixture, MIXTURES))
  centers_fn, std = MIXTURES[mixture]
  n = ec.get("num_samples", 2500)
  threshold = ec.get("threshold", 3.0)
  x = generated(ctx, name, n)
  s = modes.mode_stats(x, centers_fn(), std, threshold=threshold,
                       min_count=ec.get("min_count", 1))
  k = len(s["counts"])
  how = (f"{n} generated samples; each to its nearest of {k} centres, high quality if "
         f"< {threshold} std ({std}) away")
  return {
      f"{name}/modes_covered": (float(s["modes_covered"]),
                                f"modes of {k} with >= {ec.get('min_count', 1)} high-quality "
                                f"sample(s); {how}"),
      f"{name}/high_quality_fraction": (s["high_quality_fraction"], f"fraction of samples; {how}"),
      f"{name}/counts": (" ".join(str(int(c)) for c in s["counts"]),
                         "high-quality samples per mode, centres in modes."
                         f"{'ring' if k == 8 else 'grid'}_modes order"),
  }


def _stacked(ctx, name: str, ec) -> dict:
  from gen_jax.evaluators import feature_space  # pylint: disable=g-import-not-at-top
  clf = feature_space.load_classifier(ec)
  n = ec.get("num_samples", 26000)
  x = generated(ctx, name, n, ec.get("batch_size", 1000))
  if x.ndim != 4 or x.shape[-1] != 3:
    raise errors.ConfigError(f"stacked_mnist_modes needs 3-channel images (got {x.shape})")
  # One classifier call per channel, each channel a grayscale digit.
  digits = np.stack([clf.predict(x[..., c:c + 1]) for c in range(3)], axis=1)   # [n, 3]
  s = modes.stacked_mnist_modes(digits)
  balance = [modes.class_balance(digits[:, c], 10)["kl_to_uniform"] for c in range(3)]
  how = (f"{n} generated samples, each channel labelled by the classifier in "
         f"{clf.workdir} ({clf.description})")
  return {
      f"{name}/modes_covered": (float(s["modes_covered"]),
                                f"modes of 1000 with >= 1 sample; {how}"),
      f"{name}/kl_to_uniform": (s["kl_to_uniform"],
                                f"nats, KL(p_hat || uniform over 1000 modes); {how}"),
      f"{name}/channel_class_kl": (float(np.mean(balance)),
                                   "nats, mean over the 3 channels of KL(digit histogram || "
                                   "uniform over 10)"),
  }

