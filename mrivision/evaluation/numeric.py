"""Small numeric helpers shared by the evaluation modules."""
from __future__ import annotations

import numpy as np


def as_number(x: float) -> float | None:
    """A plain float, or None for NaN."""
    x = float(x)
    return None if np.isnan(x) else x


def safe_div(a: np.ndarray, b: np.ndarray, fill: float) -> np.ndarray:
    """a / b elementwise, ``fill`` where b == 0."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    out = np.full(np.broadcast_shapes(a.shape, b.shape), fill, dtype=float)
    return np.divide(a, b, out=out, where=b > 0)
