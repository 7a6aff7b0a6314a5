"""largebatch: a research platform for large-batch training (LARS, LAMB, batch-size sweeps, scaling dashboards)."""

__version__ = "0.1.0"
