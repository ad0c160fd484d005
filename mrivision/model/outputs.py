"""What a model's logits mean: class probabilities (softmax with the card's temperature) and, since the
stages are ordered, the expected stage (a severity score) with its spread.

The one softmax of the package: the Predictor, training, cross-validation, evaluation and the benchmarks
use it. NumPy only, so the torch-free prediction path stays light.
"""
from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, numerically stable; float32 stays float32."""
    z = np.asarray(logits)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature), row-wise, in the logits' float precision."""
    z = np.asarray(logits)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(float)
    return np.exp(log_softmax(z / temperature))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """`softmax` in float64 (for metrics and stored probabilities)."""
    return softmax(np.asarray(logits, dtype=float), temperature)


def expected_stage(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected stage (0 = first class ... k-1) and its spread (standard deviation) per row."""
    p = np.asarray(probs, dtype=float)
    stages = np.arange(p.shape[1])
    mean = p @ stages
    return mean, np.sqrt(np.maximum(p @ stages ** 2 - mean ** 2, 0.0))
