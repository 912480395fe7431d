"""penguinctl: the operator's tool for cold-email infrastructure."""

__version__ = "0.1.0"
