"""mixtrain: pretraining on a measured, pluggable mixture of text domains."""

__version__ = "0.1.0"
