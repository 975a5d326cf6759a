"""hackrobust: learning when the training data lies."""

__version__ = "0.1.0"
