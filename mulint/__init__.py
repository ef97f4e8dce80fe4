"""mulint: a linter for the Maximal Update Parametrization (µP) of PyTorch models."""

__version__ = "0.1.0"
