"""Atrophy measures over a data set: per slice, per subject, and how well each separates impaired
from NonDemented (the scripts `build_atrophy_reference.py` and `measure_atrophy_auc.py`).

Subjects: in a class-folder tree without scan names (`train/`) the pseudo-scan groups that
training uses (`datasets.pseudo_scan_groups`, same threshold); in a manifest, its subject column.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from mrivision.anatomy.atrophy import ATROPHY_SIGN, MEASURES, slice_measures
from mrivision.anatomy.tissue import segment_slice
from mrivision.constants import BINARY_CLASS_NAMES
from mrivision.evaluation.metrics import evaluate_predictions
from mrivision.inputs.datasets import Sample, load_dataset, pseudo_scan_groups, read_sample

GROUP_THRESHOLD = 0.97  # `TrainConfig.group_threshold`: the pseudo-scans training splits by


def read_cohort(path: str) -> tuple[list[Sample], list[np.ndarray], list[str]]:
    """A data set's samples, images and each slice's subject (pseudo-scan group in a bare tree)."""
    samples = load_dataset(path)
    images = [read_sample(s) for s in samples]
    if any(s.subject for s in samples):
        subjects = [s.subject or s.group for s in samples]
    elif len({s.group for s in samples}) < len(samples):
        subjects = [s.group for s in samples]
    else:
        subjects = pseudo_scan_groups(images, [s.label for s in samples], GROUP_THRESHOLD)
    return samples, images, subjects


def slice_table(samples: Sequence[Sample], images: Sequence[np.ndarray], subjects: Sequence[str],
                measure: Callable = slice_measures) -> pd.DataFrame:
    """One row per slice: name, label, scan group, subject and the measures (NaN where no brain is found)."""
    rows = []
    for s, img, subject in zip(samples, images, subjects):
        try:
            values = measure(segment_slice(img))
        except ValueError:
            values = {}
        rows.append({"name": s.name, "label": s.label, "group": s.group, "subject": subject, **values})
    return pd.DataFrame(rows)


def subject_means(table: pd.DataFrame, measures: Sequence[str] = MEASURES) -> pd.DataFrame:
    """Each subject's mean of each measure over its slices, and its label (subjects of one class)."""
    return table.dropna(subset=list(measures)).groupby("subject").agg(
        label=("label", "max"), n_slices=("label", "size"), **{m: (m, "mean") for m in measures})


def impaired_auc(table: pd.DataFrame, measure: str, sign: int, by: str, n_boot: int = 1000) -> dict:
    """Impaired-vs-NonDemented AUC of `sign * measure`, averaged per `by` group (the AUC's unit), with a
    95% CI from the evaluation protocol's bootstrap over subjects (`evaluate_predictions`).

    The measure enters the protocol as a score in [0, 1] by an affine rescaling (min-max over the table,
    no labels used): group means and AUCs are unchanged by it."""
    t = table.dropna(subset=[measure])
    score = sign * t[measure].to_numpy(float)
    p = (score - score.min()) / max(float(np.ptp(score)), 1e-12)
    y = (t["label"].to_numpy() > 0).astype(int)
    result = evaluate_predictions(y, np.stack([1 - p, p], axis=1), BINARY_CLASS_NAMES, t[by].astype(str).tolist(),
                                  n_boot=n_boot, subjects=t["subject"].astype(str).tolist())
    auc = result["binary_auc"]
    return {"auc": auc["scan"], "ci": auc["ci"]["scan"] if auc["ci"] else None, "n_units": result["n_scans"],
            "n_subjects": result["bootstrap"]["n_units"], "n_impaired": int(y[~t[by].duplicated().to_numpy()].sum()),
            "unit": by, "sign": sign}


def auc_table(table: pd.DataFrame, by: str, measures: Sequence[str] = MEASURES,
              signs: dict[str, int] = ATROPHY_SIGN, n_boot: int = 1000) -> dict[str, dict]:
    """`impaired_auc` of every measure (higher score = more atrophy, by the fixed `signs`)."""
    return {m: impaired_auc(table, m, signs[m], by, n_boot) for m in measures}
