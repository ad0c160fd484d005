"""Impaired-vs-NonDemented AUC of each atrophy measure, with 95% CIs by bootstrap over subjects.

    .venv/bin/python scripts/measure_atrophy_auc.py [--slices /tmp/x/train_slices.csv]

* train/ (subject-level): each pseudo-subject's mean over its slices. The measures are fitted on
  nothing and their direction is fixed from anatomy (`ATROPHY_SIGN`), so every train
  pseudo-subject is held out of every fit: the CV AUC is the AUC over all of them.
* external cohort (OASIS-2, validation only): one slice per session, scored per session; the
  bootstrap draws subjects (`subject_id`) with all their sessions.

Variants (printed, not shipped) are measured the same way. Writes the shipped measures' numbers to
`mrivision/anatomy/atrophy_auc.json`, which the README and the Metrics page read.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mrivision.anatomy.atrophy import (ATROPHY_SIGN, AUC_FILE, MEASURE_LABELS, MEASURES, measure_atrophy,
                                      slice_measures)
from mrivision.evaluation.atrophy_cohort import auc_table, read_cohort, slice_table, subject_means
from mrivision.anatomy.tissue import CSF, VENTRICLE, Tissue
from mrivision.evaluation.metrics import CONFIDENCE
from mrivision.evaluation.tables import value_with_ci

VARIANT_SIGN = {"central_csf_fraction": 1, "sulcal_csf_fraction": 1, "ventricle_to_csf": 1}


def central_share(tissue: Tissue, radius: float = 0.5) -> np.ndarray:
    """The brain pixels inside the central ellipse (`radius` of the brain box's half-axes)."""
    ys, xs = np.nonzero(tissue.brain)
    cy, cx, ry, rx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2, np.ptp(ys) / 2, np.ptp(xs) / 2
    yy, xx = np.mgrid[: tissue.brain.shape[0], : tissue.brain.shape[1]]
    return ((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) <= radius ** 2) & tissue.brain


def with_variants(tissue: Tissue) -> dict[str, float]:
    """The shipped measures and the variants tried against them."""
    m = slice_measures(tissue)
    csf = np.isin(tissue.labels, (CSF, VENTRICLE))
    m["central_csf_fraction"] = float(csf[central_share(tissue)].mean())
    m["sulcal_csf_fraction"] = m["csf_fraction"] - m["ventricle_fraction"]
    m["ventricle_to_csf"] = m["ventricle_fraction"] / max(m["csf_fraction"], 1e-6)
    return m


def measured(path: str, cache: str | None) -> pd.DataFrame:
    if cache and Path(cache).exists():
        return pd.read_csv(cache)
    with threadpool_limits(1):
        table = slice_table(*read_cohort(path), measure=with_variants)
    if cache:
        table.to_csv(cache, index=False)
    return table


def entry(cv: dict, ext: dict) -> dict:
    """One measure's numbers in the shape `evaluation.tables.value_with_ci` reads (levels "cv", "external")."""
    return {"cv": {"auc": cv["auc"]}, "external": {"auc": ext["auc"]},
            "ci": {"cv": {"auc": cv["ci"]}, "external": {"auc": ext["ci"]}}}


def timing(path: str, n: int = 60) -> str:
    """Median wall and CPU time of `measure_atrophy` per slice (one thread), over `n` slices of `path`."""
    _, images, _ = read_cohort(path)
    wall, cpu = [], []
    with threadpool_limits(1):
        measure_atrophy(images[0])
        for img in images[:n]:
            w, c = time.perf_counter(), time.process_time()
            measure_atrophy(img)
            wall.append(time.perf_counter() - w)
            cpu.append(time.process_time() - c)
    return (f"measure_atrophy per slice, one thread, {min(n, len(images))} slices: median {1000 * np.median(wall):.1f} "
            f"ms wall, {1000 * np.median(cpu):.1f} ms CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default="../shared/data/alzheimer-4class/train")
    ap.add_argument("--external", default="../shared/data/oasis2-external-val/manifest.csv")
    ap.add_argument("--slices", default=None, help="folder for per-slice tables to reuse (outside the repo)")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    cache = Path(args.slices) if args.slices else None
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    train = measured(args.train, str(cache / "train_variants.csv") if cache else None)
    external = measured(args.external, str(cache / "external_variants.csv") if cache else None)
    signs = {**ATROPHY_SIGN, **VARIANT_SIGN}
    names = [*MEASURES, *VARIANT_SIGN]
    cv = auc_table(subject_means(train, names).reset_index().assign(group=lambda d: d["subject"]), "group",
                   names, signs, args.n_boot)
    ext = auc_table(external, "group", names, signs, args.n_boot)
    print(f"Impaired-vs-NonDemented AUC, {CONFIDENCE:.0%} CI by bootstrap over subjects "
          f"(train: {cv[names[0]]['n_units']} pseudo-subjects; external: {ext[names[0]]['n_units']} sessions "
          f"of {ext[names[0]]['n_subjects']} subjects)")
    print("| measure | impaired when | train/ subjects (CV) | external (OASIS-2) |\n|---|---|---|---|")
    for m in names:
        tag = "" if m in MEASURES else " (variant, not shipped)"
        e = entry(cv[m], ext[m])
        print(f"| {m}{tag} | {'higher' if signs[m] > 0 else 'lower'} | {value_with_ci(e, 'cv', 'auc')} | "
              f"{value_with_ci(e, 'external', 'auc')} |")
    out = {"confidence": CONFIDENCE, "n_boot": args.n_boot,
           "cv": {"unit": "train/ pseudo-subject (mean over its slices)", "n": cv[MEASURES[0]]["n_units"],
                  "n_impaired": cv[MEASURES[0]]["n_impaired"]},
           "external": {"unit": "session (one slice), bootstrap over subjects", "n": ext[MEASURES[0]]["n_units"],
                        "n_subjects": ext[MEASURES[0]]["n_subjects"]},
           "measures": {m: {"label": MEASURE_LABELS[m], "direction": "higher" if signs[m] > 0 else "lower",
                            **entry(cv[m], ext[m])} for m in MEASURES}}
    AUC_FILE.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {AUC_FILE}")
    print(timing(args.external))


if __name__ == "__main__":
    main()
