"""Density of a 2-D model on a grid: a heat-map PNG and the probability mass it covers.

Config keys (`config.evals.<name>`): type "density2d"; extent e (the grid
covers [-e, e]^2); resolution n (n x n cell centres); batch_size.
Needs a family whose `eval_fn` returns per-example `nll` (nats) for
continuous 2-D data (the flow family).

Results: `<name>/mass` = sum over cells of p(x_cell) * cell area, a midpoint
estimate of the probability of the square (about 1 when the square holds the
distribution and the model is a normalized density), and `<name>/png`, the
heat map of p on the grid (top row = largest y), saved to
`<workdir>/samples/<name>_<step>.png`. For toy densities with a closed form
(`toy2d.log_prob`), also `<name>/data_nll`, the exact -log p_data averaged
over the test split (the lowest mean test nll any model can expect), and
`<name>/kl`, the model's mean test nll minus it: a Monte Carlo estimate of
KL(p_data || p_model) in nats.
"""
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import errors, parallel
from gen_jax.data import sources, toy2d
from gen_jax.utils import images


def grid_points(extent: float, resolution: int) -> tuple[np.ndarray, float]:
  """Cell centres f32[n*n, 2], row-major from the top-left corner, and the cell area."""
  h = 2.0 * extent / resolution
  centres = -extent + h * (np.arange(resolution) + 0.5)
  ys, xs = np.meshgrid(centres[::-1], centres, indexing="ij")
  return np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32), h * h


def evaluate(ctx, name: str, ec) -> dict:
  shape = tuple(ctx.spec["x"].shape) if "x" in ctx.spec else None
  if shape != (2,):
    raise errors.ConfigError(f"evaluator 'density2d' needs 2-D points (got {shape})")
  n = int(ec.get("resolution", 200))
  points, area = grid_points(float(ec.extent), n)
  family, params, state = ctx.family, ctx.params, ctx.state
  fn = jax.jit(lambda p, s, x: family.eval_fn(p, s, {"x": x}, None)["nll"])
  bs = int(ec.get("batch_size", 4000))
  nll = np.concatenate([np.asarray(fn(params, state, jnp.asarray(points[i:i + bs])))
                        for i in range(0, len(points), bs)])
  density = np.exp(-nll.astype(np.float64)).reshape(n, n)
  path = ctx.path(name, "png")
  if parallel.is_main():
    images.save_image(path, images.heatmap_image(density))
  mass = float(density.sum() * area)
  out = {f"{name}/mass": (mass, f"probability of [-{ec.extent}, {ec.extent}]^2 "
                                f"(midpoint rule, {n}x{n} cells)"),
         f"{name}/png": (path, "model density heat map")}
  d = ctx.data
  test = sources.from_config(d, d.eval_split).x
  exact = toy2d.log_prob(d.name, test) if d.name in toy2d.NAMES else None
  if exact is not None:
    model_nll = np.concatenate([np.asarray(fn(params, state, jnp.asarray(test[i:i + bs])))
                                for i in range(0, len(test), bs)]).astype(np.float64)
    data_nll = float(-exact.mean())
    where = f"mean over the {len(test)} points of {d.name}:{d.eval_split}"
    out[f"{name}/data_nll"] = (data_nll, f"nats per point, exact -log p_data; {where}")
    out[f"{name}/kl"] = (float(model_nll.mean()) - data_nll,
                         f"nats, model nll - data nll: estimate of KL(p_data || p_model); "
                         f"{where}")
  return out
