"""Mission Control."""

__version__ = "0.1.0"
