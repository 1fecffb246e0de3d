"""Trainers. Each module exposes `make(family, config) -> Trainer`."""
