"""Coupling neural spline flow on 2-D toy densities: test log-likelihood, density, samples.

Target: no single published number for these toy sets (FFJORD and Durkan et
  al. 2019 show them as pictures); the run reports the test log-likelihood in
  nats per point on 10,000 held-out points, the probability mass the model
  puts on [-4.5, 4.5]^2 (about 1 for a normalized density that holds the
  data), a density heat map and a 20,000-point sample plot.
Model: 8 rational-quadratic spline couplings (8 bins on [-5, 5], identity
  tails), alternating halves, MLP conditioners 2 x 128 (ReLU), N(0, I) base.
Data: one of moons, 8gaussians, checkerboard, 2spirals (FFJORD's
  definitions), 100,000 fixed training points; Adam 1e-3 with cosine decay,
  batch 256, 20,000 steps.

Commands (no data files needed; everything is generated from fixed seeds):
  python -m gen_jax.main --config experiments/nsf_toy2d.py:checkerboard \\
      --workdir runs/nsf_checkerboard
      2 CPU cores, a few minutes; likewise :moons, :8gaussians, :2spirals
  python -m gen_jax.main --config experiments/nsf_toy2d.py:checkerboard \\
      --workdir runs/affine_checkerboard --config.model.arch=coupling
      the affine-coupling (RealNVP-style) flow on the same data, for comparison
  python -m gen_jax.main --config experiments/nsf_toy2d.py:smoke --workdir /tmp/nsf_smoke
      seconds; used by the tests
"""
from gen_jax import config_lib, optim

DENSITIES = ("moons", "8gaussians", "checkerboard", "2spirals")
VARIANTS = DENSITIES + ("smoke",)


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "flow"
  c.model = dict(arch="nsf", steps=8, hidden=(128, 128), num_bins=8, tail_bound=5.0,
                 scale_bound=2.0, actnorm=False, preprocess="none", logit_alpha=0.05,
                 temperature=1.0)
  name = variant if variant in DENSITIES else "moons"
  c.data.update(name=name, variant="continuous", batch_size=256)
  c.optim.model = optim.adam(1e-3, schedule="cosine", warmup_steps=500, decay_steps=20_000,
                             final_lr_frac=0.01)
  c.total_steps = 20_000
  c.steps_per_dispatch = 100
  c.log_every_steps = 2000
  c.ckpt_every_steps = 10_000
  c.num_samples = 20_000
  c.plot_extent = 4.5
  c.reference.update(metric="test_ll/nll", value=0.0,
                     source="no published number; FFJORD and Durkan et al. show pictures",
                     estimator="exact", also=("density/kl", "density/mass"))
  c.evals = dict(
      test_ll=dict(type="likelihood", batch_size=2000, num_examples=0),
      density=dict(type="density2d", extent=4.5, resolution=200, batch_size=10_000),
  )
  if variant == "smoke":
    c.model.update(steps=2, hidden=(16,), num_bins=4)
    c.optim.model.update(warmup_steps=2, decay_steps=20)
    c.total_steps, c.steps_per_dispatch = 20, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 500
    c.evals.test_ll.update(num_examples=500, batch_size=250)
    c.evals.density.update(resolution=40, batch_size=1600)
  return c
