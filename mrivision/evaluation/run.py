"""Evaluate a Predictor on any data set (class tree, Parquet, CSV manifest) with the protocol."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mrivision.inputs.datasets import fingerprint, load_dataset, read_sample, subjects_of
from mrivision.evaluation.metrics import evaluate_predictions
from mrivision.evaluation.tables import predictions_table
from mrivision.inference.predictor import Predictor


def evaluate_model(predictor: Predictor, data: str | Path, out_csv: str | Path | None = None,
                   label_names: Sequence[str] | None = None, n_boot: int = 1000) -> dict[str, Any]:
    """Predict every slice of `data`, compute the metrics; optionally write the predictions CSV."""
    samples = load_dataset(data, predictor.class_names, label_names)
    probs = np.concatenate([
        predictor.predict_proba([read_sample(s) for s in samples[i:i + 64]]) for i in range(0, len(samples), 64)
    ])
    y = [s.label for s in samples]
    groups = [s.group for s in samples]
    result = evaluate_predictions(y, probs, predictor.class_names, groups, n_boot=n_boot, subjects=subjects_of(samples))
    result["data"] = fingerprint(samples)
    if out_csv is not None:
        predictions_table([s.name for s in samples], groups, y, probs, predictor.class_names).to_csv(out_csv, index=False)
    return result
