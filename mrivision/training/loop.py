"""The training loop: optimiser steps, validation through the metrics protocol, early stopping,
and a checkpoint every epoch that `--resume` continues from (also after any process died)."""
from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mrivision.model.outputs import apply_temperature
from mrivision.evaluation.metrics import evaluate_predictions
from mrivision.model.zoo import MRINet
from mrivision.training.config import TrainConfig
from mrivision.training.distributed import SINGLE, Dist, save_atomic
from mrivision.training.features import TrainingSource


def val_metrics(labels: np.ndarray, logits: np.ndarray, loss: float, class_names: Sequence[str]) -> dict[str, float]:
    """Validation metrics through the evaluation protocol itself (`evaluate.evaluate_predictions`)."""
    probs = apply_temperature(logits, 1.0)
    r = evaluate_predictions(labels, probs, class_names, n_boot=0)
    nan = float("nan")
    return {
        "loss": loss,
        "accuracy": r["slice"]["accuracy"],
        "balanced_accuracy": r["slice"]["balanced_accuracy"],
        "balanced_accuracy_excl_last": r["slice"].get("balanced_accuracy_excl_last", r["slice"]["balanced_accuracy"]),
        "macro_f1": r["slice"]["macro_f1"],
        "auc": r["slice"]["roc_auc_macro"] if r["slice"]["roc_auc_macro"] is not None else nan,
        "binary_auc": r["binary_auc"]["slice"] if r["binary_auc"]["slice"] is not None else nan,
        "quadratic_kappa": r["slice"]["quadratic_kappa"] if r["slice"]["quadratic_kappa"] is not None else nan,
    }


def train_step(part: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer,
               loss_fn: nn.Module, mixup: float, rng: np.random.Generator) -> float:
    """One optimiser step on a batch (with Beta(mixup, mixup) mixup when mixup > 0); returns the loss."""
    if mixup > 0:
        lam = float(rng.beta(mixup, mixup))
        perm = torch.from_numpy(rng.permutation(len(y))).to(y.device)
        out = part(lam * x + (1 - lam) * x[perm])
        loss = lam * loss_fn(out, y) + (1 - lam) * loss_fn(out, y[perm])
    else:
        loss = loss_fn(part(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def make_optimizer(cfg: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adam or adamw)")


@dataclass
class FitResult:
    """What `fit` leaves behind: the history, the best epoch, and that epoch's validation logits."""

    state: dict[str, Any]
    val_logits: np.ndarray
    trainable_parameters: int


def fit(model: MRINet, source: TrainingSource, labels: np.ndarray, tr_idx: Sequence[int], va_idx: Sequence[int],
        cfg: TrainConfig, run_dir: Path, resume: bool = False, log: Callable[[str], None] = print,
        dist: Dist = SINGLE) -> FitResult:
    """Train the model's trainable part on samples `tr_idx` of `source`, early-stopping on `va_idx`;
    checkpoints every epoch in `run_dir` (`resume` continues), ends with the best epoch loaded.
    Distributed: gradients averaged (DDP), validation on all logits, rank 0 alone writes."""
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    part = model.trainable_part().to(dist.device)
    params = [p for p in part.parameters() if p.requires_grad]
    opt = make_optimizer(cfg, params)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.3, patience=cfg.lr_patience)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    tr_idx, va_idx = np.asarray(tr_idx, np.int64), np.asarray(va_idx, np.int64)
    y_va = labels[va_idx]
    names = model.spec.class_names

    state: dict[str, Any] = {"epoch": 0, "history": [], "best": -1.0, "best_epoch": 0, "bad_epochs": 0}
    ckpt, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume and ckpt.is_file():
        saved = torch.load(ckpt, map_location=dist.device, weights_only=True)
        part.load_state_dict(saved["part"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        state = saved["state"]
        torch.set_rng_state(saved["torch_rng"].cpu())
        log(f"resumed from {ckpt} after epoch {state['epoch']}")
    dist.check_same("the checkpoint resumed from", state["epoch"])
    trained = dist.wrap(part)

    stopped = state["bad_epochs"] >= cfg.patience  # a resumed run that had already stopped early
    for epoch in range(cfg.epochs + 1 if stopped else state["epoch"] + 1, cfg.epochs + 1):
        part.train()
        model.frozen_part().eval()
        t_ep = time.time()
        total = 0.0
        steps, batches = source.train_batches(tr_idx, labels, epoch, dist)
        bar = tqdm(batches, total=steps, desc=f"epoch {epoch}/{cfg.epochs}", mininterval=1, disable=not dist.is_main)
        for step, (x, y, rng) in enumerate(bar):
            total += train_step(trained, x, y, opt, loss_fn, cfg.mixup, rng)
            bar.set_postfix(loss=f"{total / (step + 1):.3f}")
        epoch_s = time.time() - t_ep
        va_logits = source.logits(part, va_idx, dist)
        va_loss = float(loss_fn(torch.from_numpy(va_logits), torch.from_numpy(y_va)))
        metrics = val_metrics(y_va, va_logits, va_loss, names)
        score = metrics[cfg.monitor]
        sched.step(score)
        row = {"epoch": epoch, "train_loss": dist.mean(total / steps), **{f"val_{k}": v for k, v in metrics.items()},
               "lr": opt.param_groups[0]["lr"], "epoch_seconds": epoch_s,
               "images_per_second": steps * cfg.batch_size / epoch_s}
        state["history"].append(row)
        improved = score > state["best"]
        if improved:
            state.update(best=score, best_epoch=epoch, bad_epochs=0)
            if dist.is_main:
                save_atomic(part.state_dict(), best_path)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        if dist.is_main:
            save_atomic({"part": part.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                         "state": state, "torch_rng": torch.get_rng_state()}, ckpt)
            write_history(run_dir, state["history"])
        log(f"epoch {epoch}: train loss {row['train_loss']:.3f}, val {cfg.monitor} {score:.3f} "
            f"(acc {metrics['accuracy']:.3f}, bal {metrics['balanced_accuracy']:.3f}, auc {metrics['auc']:.3f}), "
            f"{epoch_s:.0f}s, {row['images_per_second']:.0f} img/s{' *' if improved else ''}")
        if state["bad_epochs"] >= cfg.patience:
            log(f"early stop: no {cfg.monitor} gain for {cfg.patience} epochs")
            break

    dist.unwrap(part)
    dist.barrier()  # rank 0 has written best.pt
    part.load_state_dict(torch.load(best_path, map_location=dist.device, weights_only=True))
    return FitResult(state, source.logits(part, va_idx, dist), sum(p.numel() for p in params))


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """The training curve as CSV (written whole, then renamed into place)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]))
    w.writeheader()
    w.writerows(history)
    tmp = run_dir / "history.csv.tmp"
    tmp.write_text(buf.getvalue())
    os.replace(tmp, run_dir / "history.csv")
