"""Image evaluators: sample grids, reconstructions, latent interpolation.

`interpolation` encodes pairs of test images, decodes `steps` points on the
line between their posterior means and saves one row per pair to
`<workdir>/samples/interpolation_<step>.png`. `samples` passes
`ec.kwargs` to `family.sample` (e.g. a flow's temperature) and writes samples
that are not images (text, tables) in their own format.
"""
import jax.numpy as jnp
import numpy as np

from gen_jax import errors, parallel
from gen_jax.data import variants
from gen_jax.utils import images, sample_files


def evaluate(ctx, name: str, ec) -> dict:
  kind = ec.type
  family, field = ctx.family, ctx.family.sample_field
  if kind == "samples":
    kwargs = dict(ec.get("kwargs", {}))   # e.g. temperature=0.7 for flows
    x = ctx.samples(ctx.key(name), ec.num, **kwargs)
    spec = variants.model_spec(ctx.data.variant, ctx.spec)
    if spec[field].modality not in ("image", "points"):
      stem = ctx.stem(name)
      paths = sample_files.write(stem, x, spec[field]) if parallel.is_main() else [stem]
      return {f"{name}/file": (paths[0], f"{ec.num} samples ({spec[field].modality})")}
    grid, rows = x, None
  else:
    if family.encode is None or family.decode is None:
      raise errors.ConfigError(f"evaluator {kind!r} needs a family with encode/decode")
    split = ctx.split()
    raw = {k: jnp.asarray(v[:2 * ec.num]) for k, v in split.arrays.items()}
    x = variants.apply_batch(split.variant, raw, split.spec, ctx.key(name))[field]
    if kind == "reconstructions":
      rec = ctx.reconstruct_fn(ctx.params, ctx.state, x[:ec.num])
      grid, rows = np.concatenate([np.asarray(x[:ec.num]), np.asarray(rec)]), 2
    else:
      grid, rows = interpolate(family, ctx.params, ctx.state, x, ec.num, ec.steps), ec.num
  path = ctx.path(name, "png")
  if parallel.is_main():
    images.save_samples(path, grid, rows=rows, extent=ctx.config.get("plot_extent") or None)
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
