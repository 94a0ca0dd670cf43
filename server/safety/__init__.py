"""The safety layer: risk to life detected on every protocol, answered with crisis lines."""
