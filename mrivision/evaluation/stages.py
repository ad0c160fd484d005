"""The stages are ordered: an expected stage (severity score) and its spread from class probabilities.

NumPy only: the torch-free prediction path and the evaluation protocol share it.
"""
from __future__ import annotations

import numpy as np


def expected_stage(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected stage (0 = first class ... k-1) and its spread (standard deviation) per row."""
    p = np.asarray(probs, dtype=float)
    stages = np.arange(p.shape[1])
    mean = p @ stages
    return mean, np.sqrt(np.maximum(p @ stages ** 2 - mean ** 2, 0.0))
