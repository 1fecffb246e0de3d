"""Flax modules without a loss, and log-densities."""
