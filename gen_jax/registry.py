"""Explicit registries: name -> module path. No import side effects.

Each family module exposes `make(config, x_shape) -> types.Family`; each evaluator module
exposes `evaluate(run, ts, name, eval_config) -> dict`; each trainer module
exposes `make(family, config) -> Trainer`; dataset names are resolved by
`gen_jax.data.sources`.
"""
import importlib

from gen_jax import errors

FAMILIES = {
    "vae": "gen_jax.models.vae",
    "gan": "gen_jax.models.gan",
    "classifier": "gen_jax.models.classifier",
    "flow": "gen_jax.models.flows",
}

TRAINERS = {
    "sgd": "gen_jax.trainers.sgd",
}

EVALUATORS = {
    "likelihood": "gen_jax.evaluators.likelihood",
    "samples": "gen_jax.evaluators.images",
    "reconstructions": "gen_jax.evaluators.images",
    "interpolation": "gen_jax.evaluators.images",
    "density2d": "gen_jax.evaluators.density",
    "accuracy": "gen_jax.evaluators.accuracy",
    "sample_quality": "gen_jax.evaluators.sample_quality",
    "modes": "gen_jax.evaluators.modes",
    "stacked_mnist_modes": "gen_jax.evaluators.modes",
}


def _load(table: dict, kind: str, name: str):
  if name not in table:
    raise errors.ConfigError(errors.choices(kind, name, table))
  return importlib.import_module(table[name])


def family_module(name: str):
  return _load(FAMILIES, "family", name)


def trainer_module(name: str):
  return _load(TRAINERS, "trainer", name)


def evaluator_module(name: str):
  return _load(EVALUATORS, "evaluator type", name)
