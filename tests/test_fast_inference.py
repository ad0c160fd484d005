"""The fast inference path gives the eager model's logits (within 1e-4) for every registered spec."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from mrivision.inference import in_memory as fast_inference
from mrivision.inference.in_memory import (
    check_inputs,
    max_abs_diff,
    onnxruntime_available,
    optimize_for_inference,
)
from mrivision.model.zoo import create_model, list_specs
from mrivision.inference.predictor import Predictor, load_model

# Small inputs everywhere; the two ImageNet-sized backbones also get fewer/narrower blocks
# (same block types, so the same graph patterns), to keep each case to a few seconds.
SMALL = {
    "convnext_probe": {"extra": {"timm_kwargs": {"depths": (1, 1, 2, 1), "dims": (16, 32, 48, 64)}}},
    "resnet_frozen": {"extra": {"timm_kwargs": {"layers": (1, 1, 1, 1)}}},
}
BACKENDS = ["torchscript"] + (["onnxruntime"] if onnxruntime_available() else [])


def small_model(name: str) -> nn.Module:
    return create_model(name, pretrained=False, input_size=(64, 56), **SMALL.get(name, {})).eval()


@pytest.mark.parametrize("name", list_specs())
def test_fast_path_matches_eager_for_every_spec(name):
    model = small_model(name)
    inputs = check_inputs((1, 64, 56), seed=123)  # not the inputs the build checked against
    default = optimize_for_inference(model)
    assert default.backend == BACKENDS[-1], default.info.notes  # fastest available backend applies
    for backend in BACKENDS:
        fast = default if backend == default.backend else optimize_for_inference(model, backends=[backend])
        assert fast.backend == backend, fast.info.notes
        assert fast.info.max_abs_diff <= 1e-4
        assert max_abs_diff(fast, model, inputs) <= 1e-4


def test_other_input_shapes_fall_back_to_eager():
    model = small_model("altzcnn")
    fast = optimize_for_inference(model)
    x = torch.randn(2, 1, 40, 40)
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x), atol=1e-6)


class BatchDependent(nn.Module):
    """Python control flow on the batch size: tracing/export bakes in the batch-1 branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).mean(dim=(2, 3))
        return y * 2 if x.shape[0] == 1 else y


def test_backend_with_wrong_logits_is_rejected():
    model = BatchDependent().eval()
    fast = optimize_for_inference(model, input_shape=(1, 16, 16))
    assert fast.backend == "eager-channels-last"
    assert any("differ" in n for n in fast.info.notes)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x), atol=1e-5)


def test_backend_that_fails_to_build_is_skipped(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("no tracing today")

    monkeypatch.setattr(fast_inference, "_ScriptRunner", boom)
    fast = optimize_for_inference(small_model("altzcnn"), backends=["torchscript"])
    assert fast.backend == "eager" and "no tracing today" in fast.info.notes[0]
    with pytest.raises(ValueError):
        optimize_for_inference(small_model("altzcnn"), backends=["tensorrt"])


def test_predictor_fast_and_eager_agree(tiny_model):
    fast, eager = load_model(tiny_model), Predictor(*_load(tiny_model), fast=False)
    rng = np.random.default_rng(0)
    images = [rng.random((48, 40), dtype=np.float32) for _ in range(5)] + [np.zeros((60, 50), np.float32)]
    assert np.allclose(fast.predict_proba(images), eager.predict_proba(images), atol=1e-5)
    assert fast.engine_info()["backend"] in BACKENDS and eager.engine_info()["backend"] == "eager (fast path off)"
    # The eager model is left untouched for CAM: NCHW weights, gradients still flow.
    assert all(p.is_contiguous() for p in fast.model.parameters())
    heat = fast.explain(images[0])
    assert heat.shape == images[0].shape and np.isfinite(heat).all()


def _load(path):
    from mrivision.model.weights import load_weights

    return load_weights(path)


def test_fast_path_is_built_once_across_threads(tiny_model, monkeypatch):
    calls = []
    real = fast_inference.optimize_for_inference

    def counting(model, **kw):
        calls.append(threading.get_ident())
        return real(model, **kw)

    monkeypatch.setattr(fast_inference, "optimize_for_inference", counting)
    predictor = load_model(tiny_model)
    img = np.random.default_rng(1).random((48, 40), dtype=np.float32)
    with ThreadPoolExecutor(4) as pool:
        probs = list(pool.map(lambda _: predictor.predict_proba([img]), range(8)))
    assert len(calls) == 1
    assert all(np.allclose(p, probs[0], atol=1e-6) for p in probs)
    assert predictor.engine_info()["backend"] == BACKENDS[-1]


def test_background_warm_up_answers_meanwhile_with_the_same_results(tiny_model, monkeypatch):
    release = threading.Event()
    real = fast_inference.optimize_for_inference

    def slow_build(model, **kw):
        release.wait(30)  # the engine is "still building" until the test says so
        return real(model, **kw)

    monkeypatch.setattr(fast_inference, "optimize_for_inference", slow_build)
    predictor, eager = load_model(tiny_model), Predictor(*_load(tiny_model), fast=False)
    images = [np.random.default_rng(i).random((48, 40), dtype=np.float32) for i in range(4)]
    reference = eager.predict_proba(images)

    assert predictor.warm_up(background=True) is predictor  # returns at once
    during = predictor.predict_proba(images)  # answered by the eager model while the build waits
    assert predictor.engine_info()["backend"] == "eager"
    release.set()
    predictor.warm_up()  # waits for the background build
    assert predictor.engine_info()["backend"] == BACKENDS[-1]
    np.testing.assert_allclose(during, reference, atol=1e-5)
    np.testing.assert_allclose(predictor.predict_proba(images), reference, atol=1e-4)
