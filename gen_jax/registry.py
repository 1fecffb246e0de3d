"""Explicit registries: name -> module path. No import side effects.

Each family module exposes `make(config, spec) -> types.Family` (spec: the
model-space data spec, gen_jax.data.spec); each evaluator module exposes
`evaluate(ctx, name, eval_config) -> dict` (ctx: evaluators.context.Context);
each application module exposes `run(config, workdir) -> dict`
(gen_jax.applications); each trainer module exposes `make(family, config) -> Trainer`; dataset names
are resolved by `gen_jax.data.sources`.
"""
import importlib

from gen_jax import errors

FAMILIES = {
    "vae": "gen_jax.models.vae",
    "autoencoder": "gen_jax.models.autoencoder",
    "gan": "gen_jax.models.gan",
    "classifier": "gen_jax.models.classifier",
    "flow": "gen_jax.models.flows",
    "gpt": "gen_jax.models.gpt",
    "mlm": "gen_jax.models.mlm",
    "seq2seq": "gen_jax.models.seq2seq",
    "gmm": "gen_jax.models.gmm",
    "mixture_bernoulli": "gen_jax.models.gmm",
    "factor_analysis": "gen_jax.models.factor_analysis",
    "ppca": "gen_jax.models.factor_analysis",
    "hmm": "gen_jax.models.hmm",
    "bayes_net": "gen_jax.models.bayes_net",
    "mrf": "gen_jax.models.mrf",
    "autoregressive": "gen_jax.models.autoregressive",
    "rbm": "gen_jax.models.rbm",
    "dbn": "gen_jax.models.dbn",
}

TRAINERS = {
    "sgd": "gen_jax.trainers.sgd",
    "em": "gen_jax.trainers.em",
}

EVALUATORS = {
    "likelihood": "gen_jax.evaluators.likelihood",
    "samples": "gen_jax.evaluators.grids",
    "reconstructions": "gen_jax.evaluators.grids",
    "interpolation": "gen_jax.evaluators.grids",
    "density2d": "gen_jax.evaluators.density",
    "accuracy": "gen_jax.evaluators.likelihood",
    "sample_quality": "gen_jax.evaluators.feature_space",
    "modes": "gen_jax.evaluators.mode_coverage",
    "stacked_mnist_modes": "gen_jax.evaluators.mode_coverage",
    "text_baselines": "gen_jax.evaluators.text_baselines",
    "hmm_recovery": "gen_jax.evaluators.hmm_recovery",
    "bn_queries": "gen_jax.evaluators.bn_queries",
    "ising_curve": "gen_jax.evaluators.ising_curve",
    "ais": "gen_jax.evaluators.ais_likelihood",
    "restoration": "gen_jax.evaluators.restoration",
    "class_balance": "gen_jax.evaluators.class_balance",
    "synthetic_tabular": "gen_jax.evaluators.synthetic_tabular",
    "text_generation": "gen_jax.evaluators.text_generation",
}


# Applications run above the trainers: each trains (or reuses) the runs it
# needs and scores them; `run(config, workdir) -> {key: (value, unit)}`.
APPLICATIONS = {
    "anomaly": "gen_jax.applications.anomaly",
    "augmentation": "gen_jax.applications.augmentation",
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


def application_module(name: str):
  return _load(APPLICATIONS, "application", name)
