"""Out-of-fold probabilities of a CV ensemble without retraining, and its probabilities elsewhere.

A CV ensemble (`ship_ensemble`) holds the K fold models as its members; member k never saw fold k.
Running member k on fold k's slices (same subject-level folds: `subject_folds` with the card's
seed, pseudo-scan groups from the card's config) and scaling by fold k's temperature gives back
the out-of-fold predictions behind `metrics.cv`; this script checks that against the card
(float16 storage explains small gaps) and also writes the shipped model's probabilities
(`Predictor.predict_proba`: ensemble, TTA, card temperature) on `test/` and the external cohort.

    python scripts/oof_from_ensemble.py --model neurostagenet_cv --out runs/fusion/cnn_probs.npz

The .npz holds, per split (train / test / external): names, groups, subjects, labels, and
`probs`; for train also `folds` and `probs_tta` (the out-of-fold probabilities with the
horizontal-flip TTA the shipped model uses at inference, for fitting on top of it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mrivision.model.outputs import apply_temperature
from mrivision.evaluation.metrics import evaluate_predictions
from mrivision.inference.predictor import Predictor
from mrivision.inputs.datasets import load_dataset, read_sample, subjects_of
from mrivision.inputs.transforms import frame, normalise
from mrivision.model.card import ModelCard, resolve, thaw
from mrivision.training.crossval import subject_folds
from mrivision.training.config import TrainConfig
from mrivision.training.splits import assign_groups, load_images

CHECKED = ("accuracy", "balanced_accuracy", "balanced_accuracy_excl_last", "macro_f1")


def member_logits(predictor: Predictor, canvases: list[np.ndarray], folds: np.ndarray, flip: bool,
                  batch_size: int = 64) -> np.ndarray:
    """Logits of member `folds[i]` for canvas i (mirrored when `flip`)."""
    model = predictor.model
    prefix, members = model.frozen_part().eval(), model.body.get_submodule("members").members
    out = np.zeros((len(canvases), len(predictor.class_names)), np.float32)
    with torch.inference_mode():
        for i in range(0, len(canvases), batch_size):
            x = normalise(canvases[i:i + batch_size], predictor.spec)
            x = torch.from_numpy(np.ascontiguousarray(x[..., ::-1] if flip else x))
            feats = prefix(x)
            f = folds[i:i + batch_size]
            for k in np.unique(f):
                rows = np.flatnonzero(f == k)
                out[i + rows] = members[int(k)](feats[torch.from_numpy(rows)]).float().numpy()
    return out


def train_oof(predictor: Predictor, card: ModelCard) -> dict[str, np.ndarray]:
    cfg_raw = thaw(card.training.config)
    cfg = TrainConfig(**{k: v for k, v in cfg_raw.items() if k in TrainConfig.__dataclass_fields__})
    samples = load_dataset(cfg.data, predictor.class_names, cfg.label_names)
    images = load_images(samples, "reading train/")
    samples = assign_groups(samples, images, cfg.group_threshold)
    cv = card.metrics["cv"]
    folds = subject_folds(samples, cv["folds"], cv["seed"])
    temps = np.array([f["temperature"] for f in sorted(card.training.per_fold, key=lambda f: f["fold"])])
    canvases = [frame(im, predictor.spec)[0] for im in images]
    plain = member_logits(predictor, canvases, folds, flip=False)
    mirrored = member_logits(predictor, canvases, folds, flip=True)
    scale = temps[folds][:, None]  # each fold model's own calibration temperature
    return {"names": np.array([s.name for s in samples]), "groups": np.array([s.group for s in samples]),
            "subjects": np.array([s.group for s in samples]), "labels": np.array([s.label for s in samples]),
            "folds": folds, "probs": apply_temperature(plain / scale, 1.0),
            "probs_tta": apply_temperature((plain + mirrored) / 2 / scale, 1.0)}


def shipped_probs(predictor: Predictor, data: str) -> dict[str, np.ndarray]:
    samples = load_dataset(data, predictor.class_names)
    probs = np.concatenate([predictor.predict_proba([read_sample(s) for s in samples[i:i + 64]])
                            for i in range(0, len(samples), 64)])
    subjects = subjects_of(samples) or [s.group for s in samples]
    return {"names": np.array([s.name for s in samples]), "groups": np.array([s.group for s in samples]),
            "subjects": np.array(subjects), "labels": np.array([s.label for s in samples]), "probs": probs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="neurostagenet_cv")
    ap.add_argument("--out", default="runs/fusion/cnn_probs.npz")
    ap.add_argument("--test", default="../shared/data/alzheimer-4class/test")
    ap.add_argument("--external", default="../shared/data/oasis2-external-val/manifest.csv")
    args = ap.parse_args()
    torch.set_num_threads(2)
    card = ModelCard.read(resolve(args.model)[1])
    predictor = Predictor.load(args.model, fast=False)
    if not predictor.spec.ensemble:
        print(f"{args.model} is not a CV ensemble", file=sys.stderr)
        return 2
    train = train_oof(predictor, card)
    result = evaluate_predictions(train["labels"], train["probs"], predictor.class_names, train["groups"], n_boot=0)
    print(f"out-of-fold, {len(train['labels'])} slices, {len(set(train['groups']))} subjects")
    for level in ("slice", "scan"):
        for name in CHECKED:
            ours, theirs = result[level][name], card.metrics["cv"][level][name]
            print(f"  {level:5s} {name:30s} recomputed {ours:.4f}  card {theirs:.4f}  diff {ours - theirs:+.4f}")
    print(f"  impaired AUC (subject) recomputed {result['binary_auc']['scan']:.4f}  "
          f"card {card.binary_auc('cv'):.4f}")
    out = {f"train_{k}": v for k, v in train.items()}
    for split, path in (("test", args.test), ("external", args.external)):
        if Path(path).exists():
            part = shipped_probs(predictor, path)
            out.update({f"{split}_{k}": v for k, v in part.items()})
            r = evaluate_predictions(part["labels"], part["probs"], predictor.class_names, part["groups"], n_boot=0)
            print(f"{split}: {len(part['labels'])} slices, scan balanced accuracy {r['scan']['balanced_accuracy']:.4f} "
                  f"(card {card.metric(split, 'balanced_accuracy', 'scan'):.4f})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
