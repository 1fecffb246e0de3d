"""Quickstart: an MLP VAE on scikit-learn's 8x8 digits (embedded, no files, no network).

Command:  python -m gen_jax.main --config experiments/quickstart.py --workdir /tmp/quickstart
Hardware: 2 CPU cores, under a minute (10,000 steps, then a k=1000 IWAE evaluation).
Target:   no published number; a sanity run. Writes samples/, metrics.jsonl, tb/
          and eval/step_*.json with test -ELBO and log p^(x) in nats per 64-pixel
          digit (dynamically binarized).
Variants: "" (default), "smoke" (seconds; used by the tests).
"""
from gen_jax import config_lib, optim

VARIANTS = ("smoke",)


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "vae"
  c.model = dict(arch="mlp", hidden=(128, 128), latent_dim=8, activation="tanh",
                 likelihood="bernoulli", objective="elbo", k=1, beta=1.0)
  c.data.update(name="digits", variant="binarized_dynamic", batch_size=100)
  c.optim.model = optim.adam(1e-3)
  c.total_steps = 10000
  c.steps_per_dispatch = 10
  c.log_every_steps = 1000
  c.ckpt_every_steps = 2500
  c.evals = dict(
      test_ll=dict(type="likelihood", batch_size=297, num_examples=0,
                   kwargs=dict(k=1000, chunk=250)),
      interp=dict(type="interpolation", num=8, steps=10),
  )
  if variant == "smoke":
    c.total_steps = 20
    c.steps_per_dispatch = 2
    c.log_every_steps = 10
    c.ckpt_every_steps = 10
    c.evals.test_ll.update(num_examples=50, batch_size=50, kwargs=dict(k=20, chunk=10))
  return c
