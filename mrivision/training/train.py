"""Training: group-aware validation split, cached frozen features, early stopping, checkpoints.

`train(config)` is what `mrivision train --config configs/NAME.yaml` runs. It writes a
checkpoint every epoch (`--resume` continues from it), a training-curve CSV, and at the end
`weights/NAME.safetensors` + `NAME.json` (the model card).
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import yaml
from torch import nn
from tqdm import tqdm

from mrivision.inputs.datasets import Sample, fingerprint, group_split, load_dataset, pseudo_scan_groups, read_sample
from mrivision.evaluation.metrics import evaluate_predictions, fit_temperature
from mrivision.model.zoo import MRINet, create_model, get_spec
from mrivision.inputs.transforms import Augment, frame, normalise


@dataclass
class TrainConfig:
    """One training run; every field can be set in the YAML config."""

    model: str
    data: str | list[str] = "../shared/data/alzheimer-4class/train"  # a list is pooled
    test_data: str | None = "../shared/data/alzheimer-4class/test"
    label_names: list[str] | None = None  # names of integer labels 0, 1, ... (Parquet/CSV without names)
    spec: dict[str, Any] = field(default_factory=dict)  # overrides of the registered ModelSpec
    name: str | None = None  # shipped name (default: the spec's name)
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    balance: str = "sqrt"  # sampler weights: "none" | "sqrt" (1/sqrt(freq)) | "inverse" (1/freq)
    augment: bool = True
    augment_params: dict[str, float] = field(default_factory=dict)  # overrides of `transforms.Augment`
    mixup: float = 0.0  # Beta(a, a) mixup strength; 0 disables
    persist_cache: bool = False  # keep cached features on disk (run_dir/feature_cache) for later runs of the same prefix
    cache_views: int = 3  # views per image cached through the frozen prefix (view 0 is clean); 0: no cache,
    # the frozen prefix runs on freshly augmented images every step (slower; the reference for the cache)
    val_fraction: float = 0.15
    group_threshold: float = 0.97
    random_split: bool = False  # the leakage lesson: split slices at random, ignoring scans
    chain_end_val: int = 0  # > 0: validate on this many slices at each end of every scan's slice chain (mirrors
    # how test/ was built: other slices of the training subjects, next to the training range); for the literature split
    monitor: str = "macro_f1"  # validation metric for early stopping and LR plateau
    patience: int = 5
    lr_patience: int = 2
    seed: int = 0
    tta_hflip: bool = True
    threads: int = 0
    out_dir: str = "weights"
    run_dir: str = "runs"
    limit: int = 0  # use only this many training images (smoke tests)
    folds: int = 5  # subject-level cross-validation (`mrivision cv`)
    external_data: str | None = "../shared/data/oasis2-external-val/manifest.csv"  # validation only

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        raw = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return cls(**raw)

    @property
    def run_name(self) -> str:
        return self.name or self.model


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def load_images(samples: Sequence[Sample], desc: str) -> list[np.ndarray]:
    return [read_sample(s) for s in tqdm(samples, desc=desc, leave=False, mininterval=2)]


def assign_groups(samples: list[Sample], images: list[np.ndarray], threshold: float) -> list[Sample]:
    """Tree data without scan names gets pseudo-scan groups from image similarity."""
    if len({s.group for s in samples}) < len(samples):
        return samples
    groups = pseudo_scan_groups(images, [s.label for s in samples], threshold)
    return [dataclasses.replace(s, group=g) for s, g in zip(samples, groups)]


def split(cfg: TrainConfig, samples: list[Sample], images: Sequence[np.ndarray] | None = None) -> tuple[list[int], list[int]]:
    """Indices of training and validation samples."""
    if cfg.chain_end_val:
        if images is None:
            raise ValueError("a chain-end split needs the images (to order each scan's slices)")
        return chain_end_split(samples, images, cfg.chain_end_val)
    if cfg.random_split:
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(samples))
        n_val = round(len(samples) * cfg.val_fraction)
        return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())
    tr, va = group_split(samples, cfg.val_fraction, cfg.seed)
    index = {s.name: i for i, s in enumerate(samples)}
    return [index[s.name] for s in tr], [index[s.name] for s in va]


def chain_end_split(samples: Sequence[Sample], images: Sequence[np.ndarray], k: int) -> tuple[list[int], list[int]]:
    """Hold out the `k` slices at each end of every scan's slice chain (scans with at least 2k + 3
    slices). A scan's slices are ordered by the spectral (Fiedler) ordering of their thumbnail
    correlations: neighbouring slices correlate most, so the order follows the slice levels."""
    from mrivision.inputs.datasets import thumbnails

    by_group: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_group.setdefault(s.group, []).append(i)
    val: list[int] = []
    for idx in by_group.values():
        if len(idx) < 2 * k + 3:
            continue
        t = thumbnails([images[i] for i in idx])
        w = np.clip(t @ t.T, 0, None)
        laplacian = np.diag(w.sum(1)) - w
        order = np.argsort(np.linalg.eigh(laplacian)[1][:, 1])
        val += [idx[j] for j in (*order[:k], *order[-k:])]
    held = set(val)
    return [i for i in range(len(samples)) if i not in held], sorted(val)


def prepare_data(cfg: TrainConfig, class_names: Sequence[str]) -> tuple[list[Sample], list[np.ndarray], list[int], list[int]]:
    """The config's samples (with scan groups), their images, and training / validation indices."""
    samples = [s for path in ([cfg.data] if isinstance(cfg.data, str) else cfg.data)
               for s in load_dataset(path, class_names, cfg.label_names)]
    if cfg.limit:
        samples = [samples[i] for i in np.random.default_rng(cfg.seed).permutation(len(samples))[: cfg.limit]]
    images = load_images(samples, "reading images")
    samples = assign_groups(samples, images, cfg.group_threshold)
    tr_idx, va_idx = split(cfg, samples, images)
    return samples, images, tr_idx, va_idx


def sampler_weights(labels: np.ndarray, mode: str, n_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    power = {"none": 0.0, "sqrt": 0.5, "inverse": 1.0}[mode]
    w = 1.0 / np.maximum(counts, 1) ** power
    return w[labels] / w[labels].sum()


class FeatureSource:
    """Inputs to the trainable part for any subset of framed canvases: cached frozen features
    (view 0 clean, the others augmented), or (augmented) canvases run through the frozen prefix."""

    def __init__(self, model: MRINet, canvases: list[np.ndarray], cfg: TrainConfig) -> None:
        self.model, self.canvases, self.cfg = model, canvases, cfg
        self.augment = Augment(**cfg.augment_params) if cfg.augment else None
        self.cached: torch.Tensor | None = None
        if model.split_index() > 0 and cfg.cache_views > 0:
            views = cfg.cache_views if self.augment else 1
            path = self._disk_path(views) if cfg.persist_cache else None
            if path is not None and path.is_file():
                self.cached = torch.load(path, map_location="cpu", weights_only=True)
            else:
                self.cached = self._cache(views)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    torch.save(self.cached, path.with_suffix(".tmp"))
                    os.replace(path.with_suffix(".tmp"), path)

    def _disk_path(self, views: int) -> Path:
        """Where these features are kept: keyed by the frozen prefix, the augmentation and the canvases."""
        import hashlib

        spec = self.model.spec
        prefix = {k: v for k, v in spec.to_dict().items() if k in ("family", "arch", "input_size", "mean", "std", "init",
                                                                    "pretrained_file", "train_from", "framing", "extra")}
        digest = hashlib.sha256(json.dumps([prefix, self.cfg.augment_params, self.cfg.augment, views, self.cfg.seed],
                                           sort_keys=True).encode())
        for c in self.canvases:
            digest.update(np.ascontiguousarray(c).tobytes())
        return Path(self.cfg.run_dir) / "feature_cache" / f"{digest.hexdigest()[:24]}.pt"

    def _cache(self, views: int) -> torch.Tensor:
        frozen = self.model.frozen_part().eval()
        rng = np.random.default_rng(self.cfg.seed + 1)
        out = []
        with torch.inference_mode():
            for v in range(views):
                feats = []
                for i in tqdm(range(0, len(self.canvases), 64), desc=f"caching frozen features (view {v + 1}/{views})",
                              leave=False, mininterval=2):
                    ims = self.canvases[i:i + 64]
                    if v > 0:
                        ims = [self.augment(im, rng) for im in ims]
                    feats.append(frozen(torch.from_numpy(normalise(ims, self.model.spec))).half())
                out.append(torch.cat(feats))
        return torch.stack(out)  # (views, N, C, H, W)

    def batch(self, idx: np.ndarray, rng: np.random.Generator, train: bool) -> torch.Tensor:
        """Inputs for samples `idx`: augmented when `train`, clean otherwise."""
        if self.cached is not None:
            views = rng.integers(0, self.cached.shape[0], size=len(idx)) if train else np.zeros(len(idx), int)
            return self.cached[torch.from_numpy(views), torch.from_numpy(np.asarray(idx))].float()
        ims = [self.canvases[i] for i in idx]
        if train and self.augment is not None:
            ims = [self.augment(im, rng) for im in ims]
        x = torch.from_numpy(normalise(ims, self.model.spec))
        if self.model.split_index() == 0:
            return x
        with torch.no_grad():
            return self.model.frozen_part()(x)


def val_metrics(labels: np.ndarray, logits: np.ndarray, loss: float, class_names: Sequence[str]) -> dict[str, float]:
    """Validation metrics through the evaluation protocol itself (`evaluate.evaluate_predictions`)."""
    probs = torch.softmax(torch.from_numpy(logits).double(), 1).numpy()
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


def run_logits(part: nn.Module, source: FeatureSource, idx: Sequence[int], batch_size: int = 128) -> np.ndarray:
    """Logits of the trainable part for the clean inputs of samples `idx`."""
    part.eval()
    idx = np.asarray(idx, dtype=np.int64)
    out = []
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        for i in range(0, len(idx), batch_size):
            out.append(part(source.batch(idx[i:i + batch_size], rng, train=False)).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def train_step(part: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer,
               loss_fn: nn.Module, mixup: float, rng: np.random.Generator) -> float:
    """One optimiser step on a batch (with Beta(mixup, mixup) mixup when mixup > 0); returns the loss."""
    if mixup > 0:
        lam = float(rng.beta(mixup, mixup))
        perm = torch.from_numpy(rng.permutation(len(y)))
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


def code_version() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class FitResult:
    """What `fit` leaves behind: the history, the best epoch, and that epoch's validation logits."""

    state: dict[str, Any]
    val_logits: np.ndarray
    trainable_parameters: int


def fit(model: MRINet, source: FeatureSource, labels: np.ndarray, tr_idx: Sequence[int], va_idx: Sequence[int],
        cfg: TrainConfig, run_dir: Path, resume: bool = False, log: Callable[[str], None] = print) -> FitResult:
    """Train the model's trainable part on samples `tr_idx` of `source`, early-stopping on `va_idx`;
    checkpoints every epoch in `run_dir` (`resume` continues), ends with the best epoch loaded."""
    run_dir.mkdir(parents=True, exist_ok=True)
    part = model.trainable_part()
    params = [p for p in part.parameters() if p.requires_grad]
    opt = make_optimizer(cfg, params)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.3, patience=cfg.lr_patience)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    tr_idx, va_idx = np.asarray(tr_idx, np.int64), np.asarray(va_idx, np.int64)
    y_tr, y_va = labels[tr_idx], labels[va_idx]
    names = model.spec.class_names

    state: dict[str, Any] = {"epoch": 0, "history": [], "best": -1.0, "best_epoch": 0, "bad_epochs": 0}
    ckpt, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume and ckpt.is_file():
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        part.load_state_dict(saved["part"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        state = saved["state"]
        torch.set_rng_state(saved["torch_rng"])
        log(f"resumed from {ckpt} after epoch {state['epoch']}")

    weights = sampler_weights(y_tr, cfg.balance, model.spec.num_classes)
    steps = max(1, len(tr_idx) // cfg.batch_size)
    stopped = state["bad_epochs"] >= cfg.patience  # a resumed run that had already stopped early
    for epoch in range(cfg.epochs + 1 if stopped else state["epoch"] + 1, cfg.epochs + 1):
        rng = np.random.default_rng(cfg.seed * 1000 + epoch)
        part.train()
        model.frozen_part().eval()
        t_ep = time.time()
        total = 0.0
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", mininterval=1)
        for step in bar:
            idx = tr_idx[rng.choice(len(tr_idx), size=cfg.batch_size, p=weights)]
            total += train_step(part, source.batch(idx, rng, train=True), torch.from_numpy(labels[idx]), opt, loss_fn,
                                cfg.mixup, rng)
            bar.set_postfix(loss=f"{total / (step + 1):.3f}")
        epoch_s = time.time() - t_ep
        va_logits = run_logits(part, source, va_idx)
        va_loss = float(loss_fn(torch.from_numpy(va_logits), torch.from_numpy(y_va)))
        metrics = val_metrics(y_va, va_logits, va_loss, names)
        score = metrics[cfg.monitor]
        sched.step(score)
        row = {"epoch": epoch, "train_loss": total / steps, **{f"val_{k}": v for k, v in metrics.items()},
               "lr": opt.param_groups[0]["lr"], "epoch_seconds": epoch_s,
               "images_per_second": steps * cfg.batch_size / epoch_s}
        state["history"].append(row)
        improved = score > state["best"]
        if improved:
            state.update(best=score, best_epoch=epoch, bad_epochs=0)
            torch.save(part.state_dict(), best_path)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        torch.save({"part": part.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "state": state,
                    "torch_rng": torch.get_rng_state()}, ckpt)
        write_history(run_dir, state["history"])
        log(f"epoch {epoch}: train loss {row['train_loss']:.3f}, val {cfg.monitor} {score:.3f} "
            f"(acc {metrics['accuracy']:.3f}, bal {metrics['balanced_accuracy']:.3f}, auc {metrics['auc']:.3f}), "
            f"{epoch_s:.0f}s, {row['images_per_second']:.0f} img/s{' *' if improved else ''}")
        if state["bad_epochs"] >= cfg.patience:
            log(f"early stop: no {cfg.monitor} gain for {cfg.patience} epochs")
            break

    part.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True))
    return FitResult(state, run_logits(part, source, va_idx), sum(p.numel() for p in params))


def build_spec(cfg: TrainConfig):
    """The registered spec with the config's overrides (and shipped name)."""
    return get_spec(cfg.model).replace(**cfg.spec, **({"name": cfg.name} if cfg.name else {}))


def train(cfg: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, checkpoint every epoch, keep the best epoch, write weights and card; returns the card."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    spec = build_spec(cfg)
    run_dir = Path(cfg.run_dir) / cfg.run_name
    started = time.time()

    samples, images, tr_idx, va_idx = prepare_data(cfg, spec.class_names)
    labels = np.array([s.label for s in samples])
    n_groups = {c: len({s.group for s in samples if s.label == k}) for k, c in enumerate(spec.class_names)}
    log(f"{len(tr_idx)} training / {len(va_idx)} validation slices; scan groups per class {n_groups}"
        f"{' (ignored: random split)' if cfg.random_split else ''}")

    model = create_model(spec, pretrained=True)
    canvases = [frame(im, spec)[0] for im in images]
    t0 = time.time()
    source = FeatureSource(model, canvases, cfg)
    cache_s = time.time() - t0
    result = fit(model, source, labels, tr_idx, va_idx, cfg, run_dir, resume, log)
    state = result.state
    temperature = fit_temperature(result.val_logits, labels[va_idx])
    model.eval()
    card = {
        "description": spec.description,
        "class_names": list(spec.class_names),
        "temperature": temperature,
        "preprocessing": {"input_size": list(spec.input_size), "mean": spec.mean, "std": spec.std,
                          "resize": "canonical framing (brain found, cropped, placed; intensities mapped)"
                          if spec.framing == "canonical" else "keep aspect, pad black",
                          "framing": spec.framing, "tta_hflip": cfg.tta_hflip},
        "training": {"config": dataclasses.asdict(cfg), "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
                     "monitor": cfg.monitor, "best_val": state["history"][state["best_epoch"] - 1],
                     "history": state["history"],
                     "seconds": round(time.time() - started), "feature_cache_seconds": round(cache_s),
                     "hardware": hardware(), "peak_rss_mb": round(peak_rss_mb()),
                     "split": "random slices (leaky)" if cfg.random_split else
                     f"{cfg.chain_end_val} slices at each end of every pseudo-scan's slice chain (as test/ was built)"
                     if cfg.chain_end_val else "pseudo-scan groups from train/",
                     "n_train": len(tr_idx), "n_val": len(va_idx)},
        "data": {"train": fingerprint(samples)},
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": result.trainable_parameters,
        "code_version": code_version(),
    }
    from mrivision.inference.ood import fit_ood

    card["ood"] = fit_ood([canvases[i] for i in tr_idx], framing=spec.framing)
    return card_with_test_metrics(model, card, cfg, Path(cfg.out_dir), log)


def card_with_test_metrics(model: MRINet, card: dict[str, Any], cfg: TrainConfig, out_dir: Path,
                           log: Callable[[str], None]) -> dict[str, Any]:
    """Save the model; evaluate what ships on the literature's test split and on the external cohort
    (where given and present) and store both in its card (`metrics.test`, `metrics.external`)."""
    from mrivision.model.card import read_card, write_json_atomic
    from mrivision.evaluation.metrics import format_report
    from mrivision.evaluation.run import evaluate_model
    from mrivision.inference.predictor import Predictor
    from mrivision.model.weights import load_weights, save_model

    save_model(model, card, out_dir)
    card_path = out_dir / f"{model.spec.name}.json"
    card = read_card(card_path)
    metrics = dict(card.get("metrics") or {})
    model16, card = load_weights(out_dir / f"{model.spec.name}.safetensors")  # evaluate what ships
    predictor = Predictor(model16, card)
    if cfg.test_data and Path(cfg.test_data).exists():
        result = evaluate_model(predictor, cfg.test_data, out_csv=out_dir / f"{model.spec.name}.predictions.csv")
        metrics.update(test=result, test_data={"path": cfg.test_data, **result["data"]})
        log("literature test split:\n" + format_report(result))
    if cfg.external_data and Path(cfg.external_data).exists():
        result = evaluate_model(predictor, cfg.external_data)
        metrics.update(external=result, external_data={"path": cfg.external_data, **result["data"]})
        log("external cohort:\n" + format_report(result))
    if metrics:
        card["metrics"] = metrics
        write_json_atomic(card_path, card)
    return card


def hardware() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {gpu}"


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    import csv

    with open(run_dir / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
