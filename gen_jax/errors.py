"""Errors that the launcher reports as one clear line (no traceback)."""


class GenJaxError(Exception):
  """Base class: a user-facing problem with a config, data or a workdir."""


class ConfigError(GenJaxError):
  """An unknown key, family, dataset, variant or an inconsistent value."""


class DataError(GenJaxError):
  """A dataset that cannot be found or does not fit the requested variant."""


class NonFiniteLossError(GenJaxError):
  """Training produced NaN or Inf; the last good checkpoint is left intact."""


def choices(kind: str, name, valid) -> str:
  """Formats 'unknown <kind> 'x'; valid choices: a, b, c'."""
  return f"unknown {kind} {name!r}; valid choices: {', '.join(sorted(valid))}"
