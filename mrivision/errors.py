"""The package's own exceptions: each carries a message a person understands."""
from __future__ import annotations


class ImageLoadError(ValueError):
    """The input could not be read as one 2-D MRI slice."""


class ModelLoadError(RuntimeError):
    """A model's weights or card are missing, corrupted or do not match."""
