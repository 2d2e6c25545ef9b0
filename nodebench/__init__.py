"""nodebench: benchmark and reproduction suite for methods that make neural ODEs cheaper to train."""

__version__ = "0.1.0"
