"""The Streamlit app, page by page, through streamlit.testing's AppTest (no browser).

Models come from the `tiny_model` fixture's folder via MRIVISION_WEIGHTS_DIR.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mrivision.constants import CLASS_NAMES
from synthetic import make_slice

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
DISCLAIMER = "Research demo — not a medical device. Not for diagnosis or treatment decisions."
TIMEOUT = 60


def png_bytes(label: int = 2, seed: int = 0) -> bytes:
    img = make_slice(label, np.random.default_rng(seed))
    ok, buf = cv2.imencode(".png", np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))
    assert ok
    return buf.tobytes()


@pytest.fixture
def weights(tiny_model: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tiny_model.parent))
    return tiny_model.parent


@pytest.fixture
def card(tiny_model: Path) -> dict:
    return json.loads(tiny_model.with_suffix(".json").read_text())


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert any(DISCLAIMER in w.value for w in at.warning), "disclaimer missing"


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    parts += [w.value for w in at.warning] + [e.value for e in at.error] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


PAGES = [None, "app_pages/predict.py", "app_pages/overlay.py", "app_pages/compare.py", "app_pages/metrics.py", "app_pages/about.py"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_disclaimer(weights, page):
    at = open_page(page)
    assert_ok(at)
    assert at.sidebar.selectbox(key="model").value == "tiny"  # the shared sidebar from app.py


@pytest.mark.parametrize("page", PAGES)
def test_pages_without_models(tmp_path, monkeypatch, page):
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tmp_path))
    at = open_page(page)
    assert_ok(at)
    assert "No trained models were found" in texts(at)


def engine_copy(tiny_model: Path, folder: Path) -> Path:
    """The tiny model copied into `folder` with its engine file (`mrivision export`)."""
    import shutil

    from mrivision.cli import main

    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_model.with_suffix(suffix), folder / f"tiny{suffix}")
    assert main(["export", str(folder / "tiny.safetensors")]) == 0
    return folder / "tiny.safetensors"


@pytest.mark.parametrize("engine_file", [False, True], ids=["torch", "engine-file"])
def test_predict_upload_shows_stage(tiny_model, tmp_path, monkeypatch, engine_file):
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(engine_copy(tiny_model, tmp_path).parent if engine_file
                                                      else tiny_model.parent))
    at = open_page()
    at.file_uploader(key="predict_uploads").set_value(("slice.png", png_bytes(), "image/png"))
    at.run()
    assert_ok(at)
    labels = {m.label: m.value for m in at.metric}
    assert labels["Predicted stage"] in CLASS_NAMES
    assert labels["Confidence (calibrated)"].endswith("%")
    assert not at.error
    assert any("Grad-CAM overlay" in c for img in at.image for c in img.captions), "no heatmap image"


def test_predict_with_a_damaged_model_says_so_plainly(tiny_model, tmp_path, monkeypatch):
    import shutil

    shutil.copy(tiny_model.with_suffix(".json"), tmp_path / "tiny.json")
    data = bytearray(tiny_model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the SHA-256 in the card no longer matches
    (tmp_path / "tiny.safetensors").write_bytes(bytes(data))
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tmp_path))
    at = open_page()  # the model loads in the background; the page is usable meanwhile
    assert_ok(at)
    at.file_uploader(key="predict_uploads").set_value(("slice.png", png_bytes(), "image/png"))
    at.run()
    assert_ok(at)
    assert at.error and "could not be loaded" in at.error[0].value
    assert "Predicted stage" not in {m.label for m in at.metric}
    # repaired in place with the same modification time (the cache key): the next run loads it again
    damaged = tmp_path / "tiny.safetensors"
    stamp = damaged.stat().st_mtime_ns
    damaged.write_bytes(tiny_model.read_bytes())
    os.utime(damaged, ns=(stamp, stamp))
    at.run()
    assert_ok(at)
    assert not at.error
    assert {m.label: m.value for m in at.metric}["Predicted stage"] in CLASS_NAMES


def test_predict_bad_file_shows_error(weights):
    at = open_page()
    at.file_uploader(key="predict_uploads").set_value(("notes.png", b"just some text, not an image\n" * 4, "image/png"))
    at.run()
    assert_ok(at)
    assert at.error and "notes" in at.error[0].value
    assert "Traceback" not in texts(at)
    # the page keeps working: a good file afterwards is classified
    at.file_uploader(key="predict_uploads").set_value(("good.png", png_bytes(), "image/png"))
    at.run()
    assert_ok(at)
    assert not at.error
    assert {m.label: m.value for m in at.metric}["Predicted stage"] in CLASS_NAMES


def test_predict_file_name_is_plain_text(weights):
    at = open_page()
    at.file_uploader(key="predict_uploads").set_value(("**bold** [x](http://e.x) <b>.png", b"not an image", "image/png"))
    at.run()
    assert_ok(at)
    assert "\\*\\*bold\\*\\*" in at.error[0].value and "\\<b\\>" in at.error[0].value


def test_predict_several_files_give_table_and_csv(weights):
    at = open_page()
    files = [("a.png", png_bytes(0, 1), "image/png"), ("b.png", png_bytes(3, 2), "image/png"),
             ("broken.jpg", b"\xff\xd8\xff garbage", "image/jpeg")]
    at.file_uploader(key="predict_uploads").set_value(files)
    at.run()
    assert_ok(at)
    table = at.dataframe[0].value
    assert list(table["file"]) == ["a.png", "b.png", "broken.jpg"]
    assert set(table["predicted stage"]) <= {*CLASS_NAMES, "-"}  # "-" for the file that could not be read
    assert table.loc[2, "error"]
    assert len(at.error) == 1 and "broken" in at.error[0].value
    assert at.download_button, "no CSV download"
    at.selectbox(key="predict_detail").set_value(1)
    at.run()
    assert_ok(at)


def test_predict_example_button(weights):
    at = open_page()
    buttons = [b for b in at.button if b.key and b.key.startswith("example_")]
    if not buttons:
        pytest.skip("examples/ holds no images")
    buttons[0].click()
    at.run()
    assert_ok(at)
    assert {m.label: m.value for m in at.metric}["Predicted stage"] in CLASS_NAMES


def test_predict_without_examples_folder(weights, tmp_path, monkeypatch):
    import ui.sources

    monkeypatch.setattr(ui.sources, "EXAMPLES_DIR", tmp_path / "absent")
    at = open_page()
    assert_ok(at)
    assert not [b for b in at.button if b.key and b.key.startswith("example_")]
    assert "Upload one or more files above." in texts(at)


def test_predict_volume_has_slice_slider(weights):
    rng = np.random.default_rng(3)
    vol = np.stack([make_slice(1, rng) for _ in range(5)], axis=-1)  # (48, 40, 5)
    data = nib.Nifti1Image(vol.astype(np.float32), np.eye(4)).to_bytes()
    at = open_page()
    at.file_uploader(key="predict_uploads").set_value(("scan.nii", data, "application/octet-stream"))
    at.run()
    assert_ok(at)
    assert len(at.slider) == 1 and at.slider[0].max == 4 and at.slider[0].value == 2
    at.slider[0].set_value(0)
    at.run()
    assert_ok(at)
    assert {m.label: m.value for m in at.metric}["Predicted stage"] in CLASS_NAMES


def test_overlay_controls(weights):
    at = open_page("app_pages/overlay.py")
    assert_ok(at)
    at.file_uploader(key="overlay_upload").set_value(("slice.png", png_bytes(), "image/png"))
    at.run()
    assert_ok(at)
    assert len(at.image) >= 1
    assert at.download_button
    at.slider(key="overlay_alpha").set_value(0.8)
    at.selectbox(key="overlay_method").set_value("gradcam++")
    at.selectbox(key="overlay_colormap").set_value("viridis")
    class_box = next(s for s in at.selectbox if s.label == "Class to explain")
    other = next(c for c in CLASS_NAMES if c != class_box.value)
    class_box.set_value(other)
    at.run()
    assert_ok(at)
    assert not at.error
    assert next(s for s in at.selectbox if s.label == "Class to explain").value == other
    for method in ("occlusion", "iterative_occlusion"):  # the gradient-free methods, on the predictions
        at.selectbox(key="overlay_method").set_value(method)
        at.run()
        assert_ok(at)
        assert not any("could not be computed" in w.value for w in at.warning)
        assert any(c.value.startswith("Blurring the hottest") for c in at.caption)  # its deletion check: a map was made
        assert any(c.value.startswith("Iterative occlusion blurs") for c in at.caption) == (method != "occlusion")


def test_overlay_reuses_predict_upload(weights):
    at = open_page()
    at.file_uploader(key="predict_uploads").set_value(("earlier.png", png_bytes(), "image/png"))
    at.run()
    at.switch_page("app_pages/overlay.py")
    at.run()
    assert_ok(at)
    assert at.selectbox(key="overlay_choice").value == 0
    assert at.download_button


def test_compare_uses_card_numbers(weights, card):
    at = open_page("app_pages/compare.py")
    at.file_uploader(key="compare_upload").set_value(("slice.png", png_bytes(), "image/png"))
    at.run()
    assert_ok(at)
    table = at.dataframe[0].value
    assert list(table["model"]) == ["tiny"]
    assert table.loc[0, "predicted stage"] in CLASS_NAMES
    # one number per model, the new-patient figure; the tiny model was not cross-validated
    assert list(table.columns) == ["model", "predicted stage", "confidence", "expected stage",
                                   "new-patient balanced accuracy", "warnings"]
    assert table.loc[0, "new-patient balanced accuracy"] == "not measured"
    assert "Only one model" in texts(at)


def test_compare_two_models_agreement(tmp_path, tiny_model, monkeypatch):
    for name in ("tiny", "tiny2"):
        (tmp_path / f"{name}.safetensors").write_bytes(tiny_model.read_bytes())
        card = json.loads(tiny_model.with_suffix(".json").read_text())
        card["spec"]["name"] = name  # card_version 3: the name lives in the spec
        (tmp_path / f"{name}.json").write_text(json.dumps(card))
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tmp_path))
    at = open_page("app_pages/compare.py")
    at.file_uploader(key="compare_upload").set_value(("slice.png", png_bytes(), "image/png"))
    at.run()
    assert_ok(at)
    assert list(at.dataframe[0].value["model"]) == ["tiny", "tiny2"]
    assert any("all 2 models predict" in s.value for s in at.info) and not at.success  # neutral, shared data
    assert len(at.image) == 2


def test_metrics_shows_card_numbers(weights, card):
    at = open_page("app_pages/metrics.py")
    assert_ok(at)
    test = card["metrics"]["test"]
    values = {m.label: m.value for m in at.metric}
    assert values["Accuracy (slice level)"] == f"{test['slice']['accuracy']:.3f}"
    assert values["Macro-F1 (scan level)"] == f"{test['scan']['macro_f1']:.3f}"
    lo, hi = test["ci"]["slice"]["accuracy"]
    assert f"95% CI [{lo:.3f}, {hi:.3f}]" in texts(at)
    assert len(at.get("plotly_chart")) >= 4  # confusion matrix, ROC, reliability, training curves
    at.radio(key="metrics_cm_mode").set_value("normalised (by true class)")
    at.radio(key="metrics_cm_level").set_value("scan")
    at.run()
    assert_ok(at)
    all_models = at.dataframe[-1].value
    assert all_models.loc[0, "test macro-F1"] == pytest.approx(test["slice"]["macro_f1"])


def test_metrics_without_card_metrics_uses_csv(tmp_path, tiny_model, monkeypatch):
    """A card without metrics still gets numbers, recomputed from its predictions CSV."""
    for suffix in (".safetensors", ".predictions.csv"):
        src = tiny_model.with_name("tiny" + suffix)
        (tmp_path / src.name).write_bytes(src.read_bytes())
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    card.pop("metrics")
    card["bench"] = {"predict_ms_p50": 1.5, "predict_cam_ms_p50": 9.0, "fast_notes": ["x"], "tta": True}
    card["faithfulness"] = {"gradcam": {"deletion_auc": 0.2, "insertion_auc": 0.7}}
    (tmp_path / "tiny.json").write_text(json.dumps(card))
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tmp_path))
    at = open_page("app_pages/metrics.py")
    assert_ok(at)
    assert "recomputed from the model's predictions file" in texts(at)
    assert "Accuracy (slice level)" in {m.label for m in at.metric}
    assert at.dataframe[-1].value.loc[0, "latency p50 (ms/slice)"] == 1.5
    assert any(s.value == "Heatmap faithfulness" for s in at.subheader)


def test_metrics_gallery_skips_missing_test_data(tmp_path, tiny_model, monkeypatch):
    for suffix in (".safetensors", ".predictions.csv"):
        src = tiny_model.with_name("tiny" + suffix)
        (tmp_path / src.name).write_bytes(src.read_bytes())
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    card["metrics"]["test_data"]["path"] = str(tmp_path / "nowhere")
    (tmp_path / "tiny.json").write_text(json.dumps(card))
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tmp_path))
    at = open_page("app_pages/metrics.py")
    assert_ok(at)
    t = texts(at)
    assert "not on this computer" in t or "No test slice was misclassified" in t


def test_about_shows_model_card(weights):
    at = open_page("app_pages/about.py")
    assert_ok(at)
    assert "leakage lesson" in texts(at)
    assert any("tiny" in e.label for e in at.expander)


# ----------------------------------------------------------------------------- helpers in ui/
def test_default_model_choice(tiny_model):
    import dataclasses

    from mrivision.model.card import ModelCard
    from ui.catalogue import ModelEntry, default_model

    base = ModelCard.read(tiny_model.with_suffix(".json"))

    def entry(key, card):
        return ModelEntry(key, Path(f"/x/{key}.safetensors"), card, 0)

    def scored(cv: float, test: float = 0.5, auc: float = 0.7) -> ModelCard:
        return base.replace(metrics={"cv": {"scan": {"balanced_accuracy_excl_last": cv}, "binary_auc": {"scan": auc}},
                                     "test": {"slice": {"macro_f1": test}}})

    a = entry("a", base.replace(metrics={}))
    b, c = entry("b", scored(0.4, test=0.9)), entry("c", scored(0.45, test=0.1))
    assert default_model([]) is None
    assert default_model([a]) is a
    assert default_model([a, b, c]) is c  # chosen on subject-level CV, never on the test split
    tie = entry("t", scored(0.45, auc=0.8))
    assert default_model([c, tie]) is tie  # tie-break: impaired-vs-NonDemented AUC
    leaky = dataclasses.replace(base.training, split="random slices (leaky)")
    lesson = entry("l", scored(0.99).replace(training=leaky))
    assert default_model([b, lesson]) is b  # the leakage lesson is never a clinical choice
    two = dataclasses.replace(base.spec, class_names=("NonDemented", "Demented"))
    binary = entry("e", scored(0.9).replace(spec=two))
    assert default_model([binary, b]) is b  # a two-class model does not stage
    d = entry("d", scored(0.1).replace(default=True))
    assert default_model([a, b, c, d]) is d


def test_agreement_lines():
    from ui.agreement import agreement

    four = CLASS_NAMES
    assert agreement([("MildDemented", four), ("MildDemented", four)]) == [
        ("info", "Four-stage models: all 2 models predict MildDemented.")]  # neutral: the models share data
    lines = agreement([("MildDemented", four), ("NonDemented", four), ("Demented", ("NonDemented", "Demented"))])
    assert lines[0][0] == "warning" and "MildDemented: 1" in lines[0][1]
    assert lines[1] == ("info", "Models with classes NonDemented / Demented: one model, predicting Demented.")
    assert lines[2][0] == "warning" and "Demented: 2, NonDemented: 1" in lines[2][1]


def test_escape():
    from ui.text import esc, safe_stem

    assert esc("a_b*[c](d)") == "a\\_b\\*\\[c\\]\\(d\\)"
    assert safe_stem("../../etc/passwd") == "image"
    assert safe_stem("scan 01.nii.gz") == "scan_01"


def test_with_an_engine_file_torch_loads_only_once_the_app_is_idle(tiny_model, tmp_path, monkeypatch):
    import time

    from ui import loading

    monkeypatch.setattr(loading, "IDLE_BEFORE_WARM_S", 0.5)
    with loading.script_run():
        predictor = loading._load_in_background(str(engine_copy(tiny_model, tmp_path)))
        assert predictor.engine is not None
        time.sleep(1.0)  # a long script run: the heatmap machinery waits for it to end
    for _ in range(8):  # short script runs keep coming (a user uploading): it still waits
        with loading.script_run():
            time.sleep(0.2)
        assert not predictor.model_loaded
    deadline = time.monotonic() + 60
    while not predictor.model_loaded and time.monotonic() < deadline:
        time.sleep(0.1)
    assert predictor.model_loaded  # idle: loaded in the background, ready for the first heatmap


# ----------------------------------------------------------------------------- issue 23: what a user reads
def jpeg_bytes(label: int = 1, seed: int = 0) -> bytes:
    img = make_slice(label, np.random.default_rng(seed))
    return cv2.imencode(".jpg", np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))[1].tobytes()


def open_scan_page(files: list[tuple[str, bytes, str]]) -> AppTest:
    at = open_page("app_pages/scan.py")
    at.file_uploader(key="scan_uploads").set_value(files)
    at.run()
    assert_ok(at)
    return at


def test_scan_page_one_picture_gives_a_stage(weights):
    at = open_scan_page([("one.jpg", jpeg_bytes(), "image/jpeg")])
    assert {m.label: m.value for m in at.metric}["Stage for the scan"] in CLASS_NAMES
    assert "one.jpg is a single slice" in texts(at).replace("\\", "")


def test_scan_page_names_the_file_it_cannot_read(weights):
    at = open_scan_page([("notes.png", b"not a picture at all", "image/png")])
    assert "notes.png could not be read" in at.error[0].value.replace("\\", "")
    at = open_scan_page([("good.jpg", jpeg_bytes(), "image/jpeg"), ("empty.jpg", b"", "image/jpeg")])
    assert "empty.jpg could not be read" in at.error[0].value.replace("\\", "")


def test_scan_page_strip_spreads_over_the_used_band(weights):
    rng = np.random.default_rng(4)
    vol = np.stack([make_slice(1, rng) for _ in range(14)], axis=-1)
    data = nib.Nifti1Image(vol.astype(np.float32), np.eye(4)).to_bytes()
    at = open_scan_page([("scan.nii", data, "application/octet-stream")])
    from ui.text import SHORT_STAGES

    strip = [c for img in at.image for c in img.captions if c.startswith("slice\u00a0")]
    used = [int(c.split(" · ")[0].split("\u00a0")[1]) for c in strip]
    assert len(used) == 6 and used == sorted(used) and used[-1] - used[0] >= 10  # spread, not the first six
    assert all(c.split(" · ")[1] in SHORT_STAGES.values() for c in strip)  # short, never cut mid-word
    assert at.text_input(key="case_label") is not None and at.download_button


def test_predict_table_slice_is_a_dash_for_pictures(weights):
    at = open_page()
    at.file_uploader(key="predict_uploads").set_value([("a.png", png_bytes(0, 1), "image/png"),
                                                       ("b.png", png_bytes(3, 2), "image/png")])
    at.run()
    assert_ok(at)
    assert list(at.dataframe[0].value["slice"]) == ["-", "-"]


def test_picker_labels_every_model_with_one_number(weights):
    at = open_page()
    picker = at.sidebar.selectbox(key="model")
    assert picker.options == ["tiny · not measured"]  # the tiny model was not cross-validated
    assert "Whole scan" in picker.help


def test_metrics_reads_as_text_for_an_ensemble(tmp_path, tiny_model, monkeypatch):
    """A CV ensemble shows its folds; faithfulness is a sentence and a table; no empty default column."""
    (tmp_path / "tiny.safetensors").write_bytes(tiny_model.read_bytes())
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    card["training"].update(ensemble_of="2 fold models", history=None, per_fold=[
        {"fold": k, "best_epoch": 2, "epochs_run": 5, "temperature": 1.2, "n_train": 30, "n_inner_val": 6,
         "n_held_out": 8, "subjects_held_out": 3} for k in range(2)])
    card["faithfulness"] = {"data": "8 test slices", "sentence": "Removing the hottest 20% lowers confidence.",
                            "gradcam": {"road_morf": {"10": 0.2, "20": 0.3}, "top20_drop": 0.25}}
    card["cam"] = {"method": "iterative_occlusion", "layer": None, "score": None, "ratio": 1.81,
                   "confirmation": {"ratio": 1.66, "n_images": 12},
                   "candidates": [{"method": "hirescam", "layer": "block4", "score": "logit", "ratio": 1.2,
                                   "top_drop": 0.4, "random_drop": 0.33},
                                  {"method": "iterative_occlusion", "layer": None, "score": None, "ratio": 1.81,
                                   "top_drop": 0.6, "random_drop": 0.33}]}
    (tmp_path / "tiny.json").write_text(json.dumps(card))
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tmp_path))
    at = open_page("app_pages/metrics.py")
    assert_ok(at)
    t = texts(at)
    assert "ensemble of 2 fold models" in t and "no training history" not in t
    assert "Removing the hottest 20% lowers confidence" in t.replace("\\", "")
    assert not at.json, "a raw dict is shown"
    tables = [d.value for d in at.dataframe]
    folds = next(v for v in tables if "fold" in v.columns)
    assert list(folds["epochs run"]) == [5, 5]
    assert "The heatmap shown for this model is Iterative occlusion (no gradients)" in t.replace("\\", "")
    assert "1.81x what a random 20% costs on the selection slices, 1.66x on 12 other slices" in t.replace("\\", "")
    chosen_among = next(v for v in tables if "ratio to random" in v.columns)
    assert list(chosen_among["method"]) == ["Iterative occlusion (no gradients)", "HiResCAM"]  # best first
    assert chosen_among.loc[0, "hottest 20% (points)"] == pytest.approx(60)
    faith = next(v for v in tables if "method" in v.columns and "ratio to random" not in v.columns)
    assert faith.loc[0, "method"] == "Grad-CAM" and faith.iloc[0, 2] == pytest.approx(0.25)
    all_models = tables[-1]
    assert list(all_models["default"]) == ["yes"]
    assert "training time" not in set(next(v for v in tables if "field" in v.columns and
                                           "models" in set(v["field"]))["field"])
