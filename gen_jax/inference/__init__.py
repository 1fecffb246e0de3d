"""Pure inference algorithms (samplers, message passing, AIS) that sit below the families."""
