"""Image evaluators: sample grids, reconstructions, latent interpolation.

`interpolation` encodes pairs of test images, decodes `steps` points on the
line between their posterior means and saves one row per pair to
`<workdir>/samples/interpolation_<step>.png`. `samples` passes
`ec.kwargs` to `family.sample` (e.g. a flow's temperature).
"""
import os

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors, parallel
from gen_jax.data import sources, variants
from gen_jax.utils import images


def evaluate(run, ts, name: str, ec) -> dict:
  kind = ec.type
  step = int(jax.device_get(ts.step))
  family, d = run.family, run.config.data
  params = ts.eval_params()
  path = os.path.join(run.workdir, "samples", f"{name}_{step:08d}.png")
  if kind == "samples":
    kwargs = dict(ec.get("kwargs", {}))   # e.g. temperature=0.7 for flows
    x = run.sample_fn(params, ts.state, parallel.fold(run.base_rng, "eval", name), ec.num,
                      **kwargs)
    grid = np.asarray(parallel.to_host(x))
    rows = None
  else:
    if family.encode is None or family.decode is None:
      raise errors.ConfigError(f"evaluator {kind!r} needs a family with encode/decode")
    split = sources.load(d.name, d.eval_split, d.path, d.download)
    raw, variant = variants.eval_arrays(d.variant, split.x[:2 * ec.num])
    x = variants.apply(variant, jnp.asarray(raw), parallel.fold(run.base_rng, "eval", name))
    if kind == "reconstructions":
      rec = run.reconstruct_fn(params, ts.state, x[:ec.num])
      grid, rows = np.concatenate([np.asarray(x[:ec.num]), np.asarray(rec)]), 2
    else:
      grid, rows = interpolate(family, params, ts.state, x, ec.num, ec.steps), ec.num
  if parallel.is_main():
    images.save_samples(path, grid, rows=rows, extent=run.config.get("plot_extent") or None)
  return {f"{name}/png": (path, f"{kind} grid")}


def interpolate(family, params, state, x, pairs: int, steps: int) -> np.ndarray:
  """Rows of [x_a, decode((1-t) z_a + t z_b) for t in linspace(0, 1, steps), x_b]."""
  z = family.encode(params, state, x[:2 * pairs])
  za, zb = z[:pairs], z[pairs:2 * pairs]
  t = jnp.linspace(0.0, 1.0, steps)[None, :, None]
  zt = (1 - t) * za[:, None] + t * zb[:, None]                 # [pairs, steps, D]
  dec = family.decode(params, state, zt.reshape(pairs * steps, -1))
  dec = dec.reshape((pairs, steps) + dec.shape[1:])
  rows = jnp.concatenate([x[:pairs, None], dec, x[pairs:2 * pairs, None]], axis=1)
  return np.asarray(rows.reshape((-1,) + rows.shape[2:]))
