"""Families: each family module exposes `make(config, spec) -> types.Family`.

Shared pieces that are not families (e.g. gan_losses) live here beside them.
"""
