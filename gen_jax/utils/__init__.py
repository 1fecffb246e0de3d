"""Checkpoints, metric writers and image grids."""
