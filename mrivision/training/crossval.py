"""Subject-level K-fold cross-validation (`mrivision cv --config ...`): the selection signal.

Folds are drawn over subjects (scan groups, or pseudo-scans found by image similarity in
`train/`), stratified by class, so no subject is on both sides of a fold. Each fold's model
early-stops on an inner subject-level split of its own training folds, never on the fold it is
scored on; every subject is predicted once by a model that never saw it (out-of-fold predictions,
`runs/NAME/cv/oof.csv`). The frozen prefix is shared by every fold, so its features are cached
once for all of them. Finished folds are kept (`fold{k}/done.json`) and skipped on `--resume`.

The result is the card's `metrics.cv`: the evaluation protocol (`evaluate.evaluate_predictions`)
on the out-of-fold predictions, with 95% CIs by bootstrap over subjects. The K fold models can
ship together as one model (`ensemble_model`): the shared prefix and K trainable parts.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from mrivision.inputs.datasets import Sample, group_split, groups_by_class
from mrivision.evaluation.calibration import fit_temperature
from mrivision.model.outputs import apply_temperature
from mrivision.evaluation.metrics import evaluate_predictions
from mrivision.evaluation.tables import format_report, predictions_table
from mrivision.model.zoo import create_model
from mrivision.training.config import TrainConfig, build_spec, start_run
from mrivision.training.distributed import Dist, process_group, quiet
from mrivision.training.features import FeatureSource
from mrivision.training.finish import distributed_fields
from mrivision.training.loop import fit
from mrivision.training.splits import check_disjoint, prepare_data
from mrivision.inputs.transforms import frame
from mrivision.model.card import ModelCard
from mrivision.training.shipping import build_card, ship


def subject_folds(samples: Sequence[Sample], k: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) per sample: subjects (groups) dealt round-robin within each class after a
    seeded shuffle, so every fold gets its share of each class and no subject is split."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    rng = np.random.default_rng(seed)
    by_class = groups_by_class(samples)
    fold_of: dict[str, int] = {}
    offset = 0
    for label in sorted(by_class):
        groups = sorted(by_class[label])
        rng.shuffle(groups)
        for i, g in enumerate(groups):
            fold_of[g] = (offset + i) % k
        offset += len(groups)  # continue the deal where the last class stopped (balanced fold sizes)
    return np.array([fold_of[s.group] for s in samples])


def cross_validate(cfg: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the K folds (resuming finished ones) and return `metrics.cv`; writes `runs/NAME/cv/`.
    Under torchrun every fold trains on all processes; rank 0 alone writes."""
    if cfg.stream:
        raise ValueError("cross-validation reads its data into memory; streaming (`stream: true`) is for "
                         "`mrivision train`")
    with process_group() as dist:
        return _cross_validate(cfg, resume, log if dist.is_main else quiet, dist)


def _cross_validate(cfg: TrainConfig, resume: bool, log: Callable[[str], None], dist: Dist) -> dict[str, Any]:
    spec = start_run(cfg)
    cv_dir = Path(cfg.run_dir) / cfg.run_name / "cv"
    if dist.is_main:
        cv_dir.mkdir(parents=True, exist_ok=True)
    samples, images, _, _ = prepare_data(cfg, spec.class_names, dist)
    labels = np.array([s.label for s in samples])
    groups = [s.group for s in samples]
    folds = subject_folds(samples, cfg.folds, cfg.seed)
    n_subjects = len(set(groups))
    log(f"{cfg.folds}-fold subject-level CV: {len(samples)} slices, {n_subjects} subjects")

    model = create_model(spec, pretrained=True).to(dist.device)
    initial = copy.deepcopy(model.trainable_part().state_dict())
    finished = dist.broadcast({k for k in range(cfg.folds) if resume and (cv_dir / f"fold{k}" / "done.json").is_file()})
    source: FeatureSource | None = None  # built when a fold has to train (not when resuming finished folds)
    cache_s = 0.0
    oof = np.zeros((len(samples), spec.num_classes))
    fold_rows = []
    for k in range(cfg.folds):
        fold_dir = cv_dir / f"fold{k}"
        held = np.flatnonzero(folds == k)
        rest = np.flatnonzero(folds != k)
        inner_tr, inner_va = group_split([samples[i] for i in rest], cfg.val_fraction, cfg.seed + k)
        pos = {s.name: int(i) for s, i in zip((samples[i] for i in rest), rest)}
        tr_idx, va_idx = [pos[s.name] for s in inner_tr], [pos[s.name] for s in inner_va]
        check_disjoint(samples, rest, held)
        check_disjoint(samples, tr_idx, va_idx)
        done = fold_dir / "done.json"
        if k in finished:
            row = json.loads(done.read_text())
            oof[held] = np.load(fold_dir / "oof.npy")
            log(f"fold {k}: done earlier (best epoch {row['best_epoch']})")
        else:
            if source is None:
                t0 = time.time()
                source = FeatureSource(model, [frame(im, spec)[0] for im in images], cfg, dist)
                cache_s = time.time() - t0
                if dist.is_main:
                    (cv_dir / "cache.json").write_text(json.dumps({"feature_cache_seconds": round(cache_s)}))
            model.trainable_part().load_state_dict(initial)
            t_fold = time.time()
            log(f"fold {k}: {len(tr_idx)} train / {len(va_idx)} inner-val / {len(held)} held-out slices")
            result = fit(model, source, labels, tr_idx, va_idx, cfg, fold_dir, resume, log, dist)
            temperature = fit_temperature(result.val_logits, labels[va_idx])
            oof[held] = apply_temperature(source.logits(model.trainable_part(), held, dist), temperature)
            row = {"fold": k, "best_epoch": result.state["best_epoch"], "epochs_run": result.state["epoch"],
                   "temperature": temperature, "n_train": len(tr_idx), "n_inner_val": len(va_idx),
                   "n_held_out": int(len(held)), "subjects_held_out": len({groups[i] for i in held}),
                   "seconds": round(time.time() - t_fold)}
            if dist.is_main:
                np.save(fold_dir / "oof.npy", oof[held])
                done.write_text(json.dumps(row, indent=2))  # after oof.npy: a fold is done once both exist
        fold_rows.append(row)
    result = evaluate_predictions(labels, oof, spec.class_names, groups)
    if not dist.is_main:
        return dist.broadcast(None)  # rank 0 alone writes and reports; every rank returns its summary
    predictions_table([s.name for s in samples], groups, labels, oof, spec.class_names).to_csv(cv_dir / "oof.csv", index=False)
    log("cross-validation (out of fold):\n" + format_report(result))
    if (cv_dir / "cache.json").is_file():  # the (first) run that computed the features
        cache_s = json.loads((cv_dir / "cache.json").read_text())["feature_cache_seconds"]
    summary = {"folds": cfg.folds, "n_subjects": n_subjects, "seed": cfg.seed, **result,
               "per_fold": fold_rows, "tta_hflip": False, "feature_cache_seconds": round(cache_s),
               "seconds": sum(int(r.get("seconds", 0)) for r in fold_rows) + round(cache_s),
               "protocol": "subject-level K-fold over train/ pseudo-subjects, stratified by class; each fold "
                           "early-stops on an inner subject-level split of its training folds",
               **distributed_fields(cfg, dist)}
    (cv_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    return dist.broadcast(summary)


def fold_parts(cv_dir: Path, k: int) -> list[dict[str, torch.Tensor]]:
    """The trainable parts' best weights of the K folds."""
    return [torch.load(cv_dir / f"fold{i}" / "best.pt", map_location="cpu", weights_only=True) for i in range(k)]


def ship_ensemble(cfg: TrainConfig, summary: dict[str, Any], log: Callable[[str], None] = print) -> ModelCard:
    """Write the K fold models as one shipped model (shared frozen prefix, mean of the K trainable
    parts' logits), with `metrics.cv` from their out-of-fold predictions, and evaluate it on the
    literature's test split and the external cohort (`shipping.ship`)."""
    from mrivision.inference.ood import fit_ood

    spec = build_spec(cfg).replace(ensemble=cfg.folds)
    cv_dir = Path(cfg.run_dir) / cfg.run_name / "cv"
    model = create_model(spec, pretrained=True)
    for member, state in zip(model.body.get_submodule("members").members, fold_parts(cv_dir, cfg.folds)):
        member.load_state_dict(state)
    model.eval()
    samples, images, _, _ = prepare_data(cfg, spec.class_names)
    canvases = [frame(im, spec)[0] for im in images]
    folds = summary["per_fold"]
    card = build_card(
        cfg, model, samples,
        description=f"{spec.description} Ensemble of the {cfg.folds} subject-level cross-validation fold models.",
        # each fold's temperature was fitted on its inner validation split; none is left for the ensemble
        temperature=float(np.mean([f["temperature"] for f in folds])),
        split=f"{cfg.folds}-fold subject-level CV over pseudo-scan groups from train/", n_train=len(samples),
        seconds=summary["seconds"], feature_cache_seconds=summary["feature_cache_seconds"],
        trainable_parameters=sum(p.numel() for p in model.trainable_part().parameters()),
        ood=fit_ood(canvases, framing=spec.framing),
        metrics={"cv": {**summary, "estimates": "the recipe: each subject predicted by the one fold model "
                                                "that never saw it (the ensemble itself saw every subject)"}},
        ensemble_of=f"{cfg.folds} fold models of `mrivision cv`", per_fold=folds,
        **{k: summary[k] for k in ("world_size", "backend", "per_process_batch_size") if k in summary})
    return ship(model, card, cfg, Path(cfg.out_dir), log)
