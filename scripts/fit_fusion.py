"""Fit and evaluate the fusion model: logistic regression on the CNN's out-of-fold probabilities
plus the atrophy measures, by nested subject-level cross-validation; ship it as a JSON-only card.

Needs the CNN's probabilities from `scripts/oof_from_ensemble.py` (out of fold on train/, the
shipped model's on test/ and the external cohort). Outer folds: the CNN's own 5 subject-level
folds (each slice's CNN probabilities come from the member that never saw its subject, so the
fusion's held-out fold is unseen by both stages); inner: GroupKFold over the training folds'
subjects picks the L2 strength (log loss). Slices are weighted 1/slices-of-their-subject, so
each subject counts once. Metrics and subject-bootstrap CIs: `evaluation.metrics`.
Variants are compared by the CV rule (`selection_score`: subject-level balanced accuracy without
ModerateDemented, then impaired AUC); the best is refitted on all of train/ and evaluated once on
test/ and the external cohort (validation only: nothing is fitted there).

    python scripts/fit_fusion.py --probs runs/fusion/cnn_probs.npz [--write]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from mrivision.anatomy.atrophy import MEASURES, measure_atrophy
from mrivision.evaluation.metrics import evaluate_predictions
from mrivision.evaluation.tables import binary_auc_with_ci, value_with_ci
from mrivision.inference.fusion import CNN_PREFIX, Fusion
from mrivision.inputs.datasets import fingerprint, load_dataset, read_sample
from mrivision.model.card import ModelCard, resolve

CS = np.logspace(-3, 2, 11)
DATA = {"train": "../shared/data/alzheimer-4class/train", "test": "../shared/data/alzheimer-4class/test",
        "external": "../shared/data/oasis2-external-val/manifest.csv"}


def atrophy_table(split: str, names: np.ndarray, cache: Path, shared: Path | None) -> np.ndarray:
    """(N, len(MEASURES)) measures of the split's slices in `names` order. Read from our cache, or
    from `shared/{split}_variants.csv` (the atrophy scripts' per-slice tables; spot-checked against
    `measure_atrophy` here), else measured; cached in `cache`."""
    path = cache / f"atrophy_{split}.npz"
    if path.is_file():
        saved = np.load(path)
        if list(saved["names"]) == list(names) and list(saved["measures"]) == list(MEASURES):
            return saved["values"]
    by_name = {s.name: s for s in load_dataset(DATA[split])}
    table = shared / f"{split}_variants.csv" if shared else None
    with threadpool_limits(1):
        if table is not None and table.is_file():
            df = pd.read_csv(table).set_index("name")
            values = df.loc[list(names), list(MEASURES)].to_numpy(float)
            for i in np.random.default_rng(0).choice(len(names), size=5, replace=False):
                fresh = measure_atrophy(read_sample(by_name[names[i]])).as_dict()
                if not np.allclose([fresh[m] for m in MEASURES], values[i], atol=1e-9):
                    raise ValueError(f"{table} disagrees with measure_atrophy on {names[i]}: stale table")
        else:
            values = np.array([[measure_atrophy(read_sample(by_name[n])).as_dict()[m] for m in MEASURES] for n in names])
    np.savez_compressed(path, names=names, measures=np.array(MEASURES), values=values)
    return values


def features(probs: np.ndarray, measures: np.ndarray, class_names: list[str], use: dict[str, bool]) -> tuple[np.ndarray, list[str]]:
    cols, names = [], []
    if use["cnn"]:
        cols.append(np.log(np.clip(probs, 1e-6, None)))
        names += [CNN_PREFIX + c for c in class_names]
    if use["atrophy"]:
        cols.append(measures)
        names += list(MEASURES)
    return np.concatenate(cols, axis=1), names


def subject_weights(groups: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray, names: list[str], balanced: bool,
        scoring: str = "neg_log_loss") -> tuple[Fusion, float]:
    """Standardise, pick C by inner GroupKFold (`scoring`), fit; the `Fusion` and its C."""
    mean, scale = x.mean(0), x.std(0) + 1e-9
    z = (x - mean) / scale
    w = subject_weights(groups)
    if balanced:  # each class's subjects weigh the same in total
        for c in np.unique(y):
            w[y == c] /= w[y == c].sum()
    inner = list(GroupKFold(n_splits=4).split(z, y, groups))
    lr = LogisticRegressionCV(Cs=CS, cv=inner, scoring=scoring, max_iter=2000)
    lr.fit(z, y, sample_weight=w * len(w) / w.sum())
    coef = np.zeros((4, x.shape[1]))
    intercept = np.full(4, -30.0)  # a class absent from the training folds gets no probability
    coef[lr.classes_] = lr.coef_
    intercept[lr.classes_] = lr.intercept_
    return Fusion(tuple(names), tuple(mean), tuple(scale), tuple(map(tuple, coef)), tuple(intercept)), float(lr.C_[0])


def variant_oof(x: np.ndarray, y: np.ndarray, groups: np.ndarray, splits: list, names: list[str],
                balanced: bool, scoring: str) -> np.ndarray:
    """Held-out probabilities of one variant over `splits` (train, held-out index pairs)."""
    oof = np.zeros((len(y), 4))
    for tr, te in splits:
        oof[te] = fit(x[tr], y[tr], groups[tr], names, balanced, scoring)[0].predict_proba(x[te])
    return oof


def nested_variant_choice(d: dict[str, np.ndarray], meas: np.ndarray, class_names: list[str],
                          variants: dict[str, tuple]) -> tuple[dict[str, Any], list[str]]:
    """The variant choice itself inside the outer folds: in each, the variant with the best CV rule
    on a 4-fold GroupKFold of the training folds, refitted there and scored on the held-out fold."""
    y, groups, folds = d["train_labels"], d["train_groups"], d["train_folds"]
    feats = {k: features(d["train_probs_tta"], meas, class_names, v[0]) for k, v in variants.items()}
    oof, chosen = np.zeros((len(y), 4)), []
    for k in np.unique(folds):
        rest, held = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        inner = [(rest[a], rest[b]) for a, b in GroupKFold(n_splits=4).split(rest, y[rest], groups[rest])]
        scores = {}
        for label, (_, balanced, scoring) in variants.items():
            x, names = feats[label]
            p = variant_oof(x, y, groups, inner, names, balanced, scoring)[rest]
            scores[label] = score(evaluate_predictions(y[rest], p, class_names, groups[rest], n_boot=0))
        best = max(scores, key=scores.__getitem__)
        chosen.append(best)
        x, names = feats[best]
        oof[held] = variant_oof(x, y, groups, [(rest, held)], names, *variants[best][1:])[held]
    return evaluate_predictions(y, oof, class_names, groups), chosen


def summary(result: dict[str, Any]) -> str:
    return (f"subject bal.acc excl. Moderate {value_with_ci(result, 'scan', 'balanced_accuracy_excl_last')}, "
            f"bal.acc {value_with_ci(result, 'scan', 'balanced_accuracy')}, "
            f"impaired AUC {binary_auc_with_ci(result, 'scan')}")


def score(result: dict[str, Any]) -> tuple[float, float]:
    return result["scan"]["balanced_accuracy_excl_last"], result["binary_auc"]["scan"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probs", default="runs/fusion/cnn_probs.npz")
    ap.add_argument("--base", default="neurostagenet_cv")
    ap.add_argument("--name", default="neurostagenet_fusion")
    ap.add_argument("--atrophy-tables", help="folder of per-slice atrophy tables ({split}_variants.csv) to reuse")
    ap.add_argument("--nested-variants", action="store_true",
                    help="also choose the variant inside each outer fold (the unbiased estimate of the whole recipe)")
    ap.add_argument("--write", action="store_true", help="write weights/NAME.json (a card on the base's weights)")
    args = ap.parse_args()
    cache = Path(args.probs).parent
    d = dict(np.load(args.probs))
    _, base_card_path = resolve(args.base)
    base = ModelCard.read(base_card_path)
    class_names = list(base.class_names)
    shared = Path(args.atrophy_tables) if args.atrophy_tables else None
    meas = {s: atrophy_table(s, d[f"{s}_names"], cache, shared) for s in ("train", "test", "external")}
    y, groups, folds = d["train_labels"], d["train_groups"], d["train_folds"]

    both, cnn, atrophy = {"cnn": True, "atrophy": True}, {"cnn": True, "atrophy": False}, {"cnn": False, "atrophy": True}
    variants = {"cnn only (recalibrated)": (cnn, False, "neg_log_loss"),
                "atrophy only": (atrophy, False, "neg_log_loss"),
                "cnn + atrophy": (both, False, "neg_log_loss"),
                "cnn + atrophy, class-balanced": (both, True, "neg_log_loss"),
                "cnn only, class-balanced": (cnn, True, "neg_log_loss"),
                "cnn + atrophy, class-balanced, C by bal. acc.": (both, True, "balanced_accuracy"),
                "atrophy only, class-balanced, C by bal. acc.": (atrophy, True, "balanced_accuracy")}
    base_cv = evaluate_predictions(y, d["train_probs_tta"], class_names, groups)
    print(f"CNN out of fold (TTA, no fusion): {summary(base_cv)}")
    results = {}
    for label, (use, balanced, scoring) in variants.items():
        x, names = features(d["train_probs_tta"], meas["train"], class_names, use)
        oof, cs = np.zeros((len(y), 4)), []
        for k in np.unique(folds):
            tr, te = folds != k, folds == k
            model, c = fit(x[tr], y[tr], groups[tr], names, balanced, scoring)
            oof[te] = model.predict_proba(x[te])
            cs.append(c)
        result = evaluate_predictions(y, oof, class_names, groups)
        results[label] = (result, use, balanced, scoring, cs)
        print(f"{label:32s} {summary(result)}  (C per fold {', '.join(f'{c:.3g}' for c in cs)})", flush=True)

    nested = None
    if args.nested_variants:
        nested, chosen = nested_variant_choice(d, meas["train"], class_names, variants)
        print(f"variant chosen inside each outer fold ({'; '.join(chosen)}): {summary(nested)}")
    best = max(results, key=lambda k: score(results[k][0]))
    cv, use, balanced, scoring, cs = results[best]
    if nested is not None:  # the card's CV estimates the whole recipe, variant choice included
        chosen_cv = {"balanced_accuracy_excl_last": cv["scan"]["balanced_accuracy_excl_last"],
                     "impaired_auc": cv["binary_auc"]["scan"], "note": "optimistic: best of the variants on the same folds"}
        cv = {**nested, "variant_chosen_per_fold": chosen, "chosen_variant_outer_cv": chosen_cv}
    print(f"best by the CV rule: {best}")
    x, names = features(d["train_probs_tta"], meas["train"], class_names, use)
    final, c = fit(x, y, groups, names, balanced, scoring)
    out = {"cv": {**cv, "folds": int(len(np.unique(folds))), "n_subjects": int(len(np.unique(groups))),
                  "protocol": "nested subject-level CV: outer = the CNN's 5 subject-level folds (its out-of-fold "
                              "probabilities), inner = 4-fold GroupKFold over the training folds' subjects for the "
                              "L2 strength (log loss); slices weighted 1/slices of their subject",
                  "per_fold_C": cs, "variant": best, "variants_tried": len(variants)}}
    if nested is not None:
        out["cv"]["protocol"] += "; the variant is chosen by the CV rule inside each outer fold (4-fold GroupKFold)"
    fused: dict[str, np.ndarray] = {}
    for split in ("test", "external"):
        xs, _ = features(d[f"{split}_probs"], meas[split], class_names, use)
        probs = final.predict_proba(xs)
        subjects = d[f"{split}_subjects"] if split == "external" else None
        result = evaluate_predictions(d[f"{split}_labels"], probs, class_names, d[f"{split}_groups"], subjects=subjects)
        base_r = base.metrics[split]
        print(f"{split}: fusion {summary(result)}; base CNN bal.acc {base_r['scan']['balanced_accuracy']:.3f}, "
              f"impaired AUC {base_r['binary_auc']['scan']:.3f}")
        samples = load_dataset(DATA[split])
        out[split] = {**result, "data": fingerprint(samples)}
        fused[split] = probs
        out[f"{split}_data"] = {"path": DATA[split], **fingerprint(samples)}
    if args.write:
        write_card(args, base, final, c, out, results)
        check_predictor(args.name, d, fused["test"])
    return 0


def write_card(args: argparse.Namespace, base: ModelCard, fusion: Fusion, c: float, metrics: dict[str, Any],
               results: dict[str, Any]) -> None:
    """The fusion's card: the base's card (spec, preprocessing, OOD, weights) with the fusion, its own
    name and metrics, no bench (not measured); `pick_default` decides the default by the CV rule."""
    card = base.replace(
        spec=base.spec.replace(name=args.name), default=False, bench=None, metrics=metrics,
        description=(f"{base.description} Its class probabilities and the slice's atrophy measures "
                     f"(mrivision.measure_atrophy) fused by a logistic regression ({metrics['cv']['variant']})."),
        fusion={**fusion.to_dict(), "base": args.base, "C": c, "sklearn": "LogisticRegressionCV (multinomial, L2)",
                "variants": {k: {"balanced_accuracy_excl_last": r[0]["scan"]["balanced_accuracy_excl_last"],
                                 "impaired_auc": r[0]["binary_auc"]["scan"]} for k, r in results.items()},
                "script": "scripts/fit_fusion.py"})
    path = resolve(args.base)[1].parent / f"{args.name}.json"
    card.write(path)
    print("wrote", path)


def check_predictor(name: str, d: dict[str, np.ndarray], expected: np.ndarray, n: int = 8) -> None:
    """The shipped card through `Predictor` gives the script's fused probabilities (first `n` test slices)."""
    from mrivision.inference.predictor import Predictor

    by_name = {s.name: s for s in load_dataset(DATA["test"])}
    images = [read_sample(by_name[x]) for x in d["test_names"][:n]]
    got = Predictor.load(name).predict_proba(images)
    diff = float(np.abs(got - expected[:n]).max())
    print(f"Predictor.load({name!r}) on {n} test slices: max |difference| from the script's probabilities {diff:.2e}")
    if diff > 1e-3:
        raise SystemExit("the Predictor does not reproduce the fusion")


if __name__ == "__main__":
    sys.exit(main())
