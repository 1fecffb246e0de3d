"""gen_jax: generative models in JAX/Flax with one trainer, config-driven experiments."""
__version__ = "0.1.0"
