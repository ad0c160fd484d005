"""Shared fixtures: a synthetic data set and a tiny model trained on it through the real code."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # synthetic.py
sys.path.insert(1, str(Path(__file__).parent.parent))  # the app's `ui` package (browser test)

from synthetic import write_tree  # noqa: E402

from mrivision.training.train import TrainConfig, train  # noqa: E402

TINY_SPEC = {"input_size": [48, 40], "extra": {"widths": [8, 16, 16, 32]}, "head_dropout": 0.0, "framing": "letterbox"}
CANONICAL_SPEC = {**TINY_SPEC, "framing": "canonical"}


def tiny_config(data: Path, test: Path | None, out: Path, **kw) -> TrainConfig:
    base = dict(model="altzcnn", name="tiny", data=str(data), test_data=str(test) if test else None,
                spec=TINY_SPEC, epochs=6, batch_size=16, lr=3e-3, label_smoothing=0.0, augment=False,
                patience=10, monitor="accuracy", out_dir=str(out / "weights"), run_dir=str(out / "runs"),
                val_fraction=0.2, seed=0)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    return {"train": write_tree(root / "train", 40, seed=1), "test": write_tree(root / "test", 16, seed=2, scan_names=True)}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, synthetic_data) -> Path:
    """Path of `tiny.safetensors` (with card and predictions CSV) trained on the synthetic data."""
    out = tmp_path_factory.mktemp("tiny")
    train(tiny_config(synthetic_data["train"], synthetic_data["test"], out), log=lambda _: None)
    weights = out / "weights" / "tiny.safetensors"
    assert json.loads(weights.with_suffix(".json").read_text())["metrics"]["test"]["slice"]["accuracy"] > 0.5
    return weights


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waits on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
