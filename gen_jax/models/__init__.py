"""One module per family; each exposes `make(config, x_shape) -> types.Family`."""
