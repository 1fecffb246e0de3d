"""Offline sample-quality and mode-collapse metrics on features, samples or labels."""
