"""Shared app plumbing: where models come from, cached loading / prediction / CAM, image sources.

Pages stay thin: they lay out widgets and call these helpers, which call the `mrivision` package.
Uploads never touch the disk: their bytes live in memory (Streamlit's upload manager, the
in-memory ``st.cache_data`` caches and session state) and are decoded with ``load_image(bytes)``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import string
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import streamlit as st

from mrivision import ImageLoadError, ModelLoadError
from mrivision.model.card import is_lesson, metric, pick_default, test_metric
from mrivision.constants import CLASS_NAMES, WEIGHTS_ENV, weights_dir as package_weights_dir
from mrivision.inputs.image import ImageInfo, describe_image, load_image

if TYPE_CHECKING:  # torch loads in the background (`preload`), so the first page shows without waiting for it
    from mrivision import Prediction, Predictor

DISCLAIMER = "Research demo — not a medical device. Not for diagnosis or treatment decisions."
REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "examples"
UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "dcm", "nii", "gz"]
EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".nii", ".nii.gz")
MODEL_KEY = "model"  # session-state key of the sidebar model picker
DEFAULT_METHOD = "gradcam"
MAX_REMEMBERED_UPLOADS = 8
MAX_REMEMBERED_BYTES = 100 * 1024 * 1024
MIN_DISPLAY_SIDE = 256


# ----------------------------------------------------------------------------- plain text
_MD_SPECIAL = set(string.punctuation)


def esc(text: object) -> str:
    """User-supplied text (file names, messages) made inert for Streamlit markdown.

    Every ASCII punctuation character is backslash-escaped (CommonMark allows this), so names
    such as ``**x**.png``, ``[a](b)``, ``:red[x]`` or ``$x$`` show literally. HTML is never enabled.
    """
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text).replace("\n", " "))


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_ci(ci: Sequence[float | None] | None, digits: int = 3) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "n/a"
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


# ----------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelEntry:
    """A model found in the weights folder: its key (file stem), weights path and card."""

    key: str
    path: Path
    card: dict
    mtime_ns: int

    @property
    def name(self) -> str:
        return str(self.card.get("name") or self.key)

    @property
    def cache_key(self) -> str:
        return f"{self.path}:{self.mtime_ns}"

    @property
    def predictions_csv(self) -> Path:
        return self.path.with_name(f"{self.key}.predictions.csv")

    def test_metric(self, metric: str, level: str = "slice") -> float | None:
        return test_metric(self.card, metric, level)


def weights_dir() -> Path:
    """The folder holding `NAME.safetensors` + `NAME.json`: $MRIVISION_WEIGHTS_DIR, else the package's."""
    return package_weights_dir()


def _signature(directory: Path) -> tuple[tuple[str, int], ...]:
    """Names and modification times of the model files, so caches notice new or retrained models."""
    try:
        files = [p for p in directory.iterdir() if p.suffix in (".safetensors", ".json") and p.is_file()]
    except OSError:
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in files))


@st.cache_data(show_spinner=False, max_entries=8)
def _scan_models(directory: str, signature: tuple) -> tuple[list[tuple[str, str, dict, int]], list[str]]:
    found, problems = [], []
    for weights in sorted(Path(directory).glob("*.safetensors")):
        card_path = weights.with_suffix(".json")
        if not card_path.is_file():
            continue
        try:
            card = json.loads(card_path.read_text())
            if not isinstance(card, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"The model card {card_path.name} could not be read ({exc}).")
            continue
        found.append((weights.stem, str(weights), card, weights.stat().st_mtime_ns))
    return found, problems


def list_models() -> list[ModelEntry]:
    """Every model with a card in `weights_dir()`, sorted by file name."""
    directory = weights_dir()
    found, _ = _scan_models(str(directory), _signature(directory))
    return [ModelEntry(key, Path(path), card, mtime) for key, path, card, mtime in found]


def model_problems() -> list[str]:
    directory = weights_dir()
    return _scan_models(str(directory), _signature(directory))[1]


def default_model(models: Sequence[ModelEntry]) -> ModelEntry | None:
    """The card marked `"default": true`, else the best four-stage test macro-F1, else the first."""
    key = pick_default({m.key: m.card for m in models})
    return next((m for m in models if m.key == key), None)


def model_label(m: ModelEntry) -> str:
    """The model's name and its new-patient number (subject-level CV), else its test-split macro-F1."""
    cv = metric(m.card, "cv", "balanced_accuracy", "scan")
    if cv is not None:
        return f"{m.name} (new-patient CV bal. acc. {cv:.3f})"
    f1 = m.test_metric("macro_f1")
    return m.name if f1 is None else f"{m.name} (test-split macro-F1 {f1:.3f})"


def model_picker() -> ModelEntry | None:
    """The sidebar model select box (session-state key ``model``), defaulting to the best model."""
    models = [m for m in list_models() if not is_lesson(m.card)]  # the leakage lesson is never a clinical choice
    if not models:
        st.sidebar.info("No models found yet.")
        return None
    keys = [m.key for m in models]
    by_key = {m.key: m for m in models}
    if st.session_state.get(MODEL_KEY) not in by_key:  # first run, or the chosen model was removed
        st.session_state[MODEL_KEY] = default_model(models).key
    key = st.sidebar.selectbox("Model", keys, key=MODEL_KEY, format_func=lambda k: model_label(by_key[k]),
                               help="Used by the Predict, Overlay and Metrics pages.")
    preload(by_key[key])
    return by_key[key]


def current_model() -> ModelEntry | None:
    models = [m for m in list_models() if not is_lesson(m.card)]
    by_key = {m.key: m for m in models}
    return by_key.get(st.session_state.get(MODEL_KEY)) or default_model(models)


def no_models_message() -> None:
    st.info(f"No trained models were found in the weights folder ({esc(weights_dir())}). "
            f"Models appear here once training has written `NAME.safetensors` with its `NAME.json` card; "
            f"set the environment variable {WEIGHTS_ENV} to use another folder.")
    for problem in model_problems():
        st.warning(esc(problem))


def require_model() -> ModelEntry:
    """The selected model, or an explanation and a stop when none is available."""
    entry = current_model()
    if entry is None:
        no_models_message()
        st.stop()
    return entry


_LOADER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mrivision-load")
_WARMER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mrivision-warm")  # never delays a model load
IDLE_BEFORE_WARM_S = 2.0
SEND_BEFORE_IMPORTS_S = 0.25


class _Activity:
    """Script runs in progress (any session) and when the last one ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._last_end = time.monotonic()

    @contextlib.contextmanager
    def run(self) -> Iterator[None]:
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._last_end = time.monotonic()

    def idle_s(self) -> float:
        """Seconds since the last script run ended; 0 while one runs."""
        with self._lock:
            return 0.0 if self._running else time.monotonic() - self._last_end


ACTIVITY = _Activity()


def script_run() -> contextlib.AbstractContextManager[None]:
    """Wrap each script run (app.py does), so that background work can wait for the app to be idle."""
    return ACTIVITY.run()


def _load_in_background(path: str) -> Predictor:
    from mrivision import load_model

    predictor = load_model(path)
    if predictor.engine is None:  # predictions wait for torch anyway: build the fast engine meanwhile
        predictor.warm_up(background=True)
        _LOADER.submit(cam_module)
    else:
        _WARMER.submit(_warm_when_idle, predictor)
    return predictor


def _warm_when_idle(predictor: Predictor) -> None:
    """Load what heatmaps need (torch, the PyTorch model, the CAM module; ~4 s) once no script
    has run for `IDLE_BEFORE_WARM_S`. Those imports hold Python's lock for seconds at a time and
    would delay a prediction that arrives meanwhile; the engine file answers without them."""
    while (left := IDLE_BEFORE_WARM_S - ACTIVITY.idle_s()) > 0:
        time.sleep(left)
    predictor.warm_up()
    cam_module()


@st.cache_resource(show_spinner=False, max_entries=8)
def _loading(path: str, mtime_ns: int) -> Future:
    """The loading of one model (weights check, then its engine file or torch), in a background thread."""
    return _LOADER.submit(_load_in_background, path)


def preload(entry: ModelEntry | None) -> None:
    """Start loading `entry` now, so that it is ready (or nearly) when the user's first file arrives."""
    if entry is not None:
        _loading(str(entry.path), entry.mtime_ns)


def get_predictor(entry: ModelEntry) -> Predictor:
    """The loaded model (once per process); raises ModelLoadError with a readable message."""
    future = _loading(str(entry.path), entry.mtime_ns)
    try:
        if future.done():
            return future.result()
        with st.spinner("Loading the model…"):
            return future.result()
    except Exception:
        _loading.clear(str(entry.path), entry.mtime_ns)  # a failed load is retried on the next run
        raise


def require_predictor(entry: ModelEntry) -> Predictor:
    try:
        return get_predictor(entry)
    except ModelLoadError as exc:
        st.error(f"The model {esc(entry.name)} could not be loaded: {esc(exc)}")
        st.stop()


# ----------------------------------------------------------------------------- CAM
def cam_module():
    """`mrivision.explain.cam` (METHODS, COLORMAPS, overlay), or None if this installation lacks it."""
    try:
        from mrivision.explain import cam
    except ImportError:
        return None
    return cam


def cam_methods() -> list[str]:
    cam = cam_module()
    return list(getattr(cam, "METHODS", [])) if cam else []


def colormaps() -> list[str]:
    cam = cam_module()
    names = list(getattr(cam, "COLORMAPS", [])) if cam else []
    return names or ["jet"]


def method_label(method: str) -> str:
    labels = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "hirescam": "HiResCAM", "xgradcam": "XGrad-CAM",
              "layercam": "LayerCAM", "eigencam": "Eigen-CAM", "scorecam": "Score-CAM (slow)",
              "random": "Random (sanity baseline)"}
    return labels.get(method, method)


def overlay_rgb(img: np.ndarray, heat: np.ndarray, alpha: float = 0.45, colormap: str = "jet") -> np.ndarray:
    """RGB uint8 overlay via `mrivision.explain.cam.overlay`."""
    rgb = np.asarray(cam_module().overlay(img, heat, alpha=alpha, colormap=colormap), dtype=np.float32)
    if rgb.max() > 1.0 + 1e-6:  # tolerate an implementation that returns 0..255
        rgb = rgb / 255.0
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def heat_rgb(img: np.ndarray, heat: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """The heatmap alone, coloured with the same colormap (overlay at full opacity)."""
    return overlay_rgb(img, heat, alpha=1.0, colormap=colormap)


@st.cache_data(show_spinner=False, max_entries=128)
def _explain(model_key: str, image_key: str, method: str, target: str, _predictor: Predictor,
             _img: np.ndarray) -> np.ndarray:
    return np.asarray(_predictor.explain(_img, method=method, target=target), dtype=np.float32)


def explain(entry: ModelEntry, predictor: Predictor, image_key: str, img: np.ndarray, method: str,
            target: str) -> np.ndarray | None:
    """Cached heatmap; None (with a warning shown) if it cannot be computed."""
    if "mrivision.explain.cam" not in sys.modules:
        # The first heatmap of the process: what the page shows so far (the prediction) goes out
        # before ~4 s of torch imports, which hold Python's interpreter lock and would hold up the
        # server's sending for most of a second.
        time.sleep(SEND_BEFORE_IMPORTS_S)
    if cam_module() is None:
        st.info("Heatmaps are not available in this installation (the CAM module is missing).")
        return None
    try:
        with st.spinner(f"Computing {method_label(method)} for {esc(target)}…"):
            return _explain(entry.cache_key, image_key, method, target, predictor, img)
    except Exception as exc:  # a heatmap failure must not take the page down
        st.warning(f"The {method_label(method)} heatmap could not be computed: {esc(exc)}")
        return None


# ----------------------------------------------------------------------------- images
def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@st.cache_data(show_spinner=False, max_entries=64)
def _describe(key: str, name: str, _data: bytes) -> ImageInfo:
    return describe_image(_data, name=name)


@st.cache_data(show_spinner=False, max_entries=64)
def _load(key: str, name: str, slice_index: int | None, _data: bytes) -> np.ndarray:
    return load_image(_data, name=name, slice_index=slice_index)


@st.cache_data(show_spinner=False, max_entries=256)
def _predict(model_key: str, image_key: str, _predictor: Predictor, _img: np.ndarray) -> Prediction:
    return _predictor.predict(_img)


@dataclass
class Source:
    """One image the user supplied: an upload (bytes in memory) or an example file's bytes."""

    name: str
    data: bytes
    origin: str = "upload"

    @property
    def key(self) -> str:
        return digest(self.data)


def describe(source: Source) -> ImageInfo:
    return _describe(source.key, source.name, source.data)


def load_slice(source: Source, slice_index: int | None = None) -> np.ndarray:
    return _load(source.key, source.name, slice_index, source.data)


def image_key(source: Source, slice_index: int | None) -> str:
    return f"{source.key}:{slice_index}"


def predict(entry: ModelEntry, predictor: Predictor, source: Source, slice_index: int | None,
            img: np.ndarray) -> Prediction:
    return _predict(entry.cache_key, image_key(source, slice_index), predictor, img)


def slice_picker(source: Source, key: str) -> int | None:
    """A slider for volumes (describe_image n_slices > 1); None (the default slice) for 2-D images.

    Raises ImageLoadError for unreadable files.
    """
    info = describe(source)
    if info.n_slices <= 1:
        return None
    return st.slider(f"Slice (along axis {info.axis}; {info.n_slices} slices)", 0, info.n_slices - 1,
                     info.n_slices // 2, key=f"{key}_slice_{source.key[:16]}")


def for_display(img: np.ndarray) -> np.ndarray:
    """Upscale tiny slices so they are visible; values stay in [0, 1] (or uint8 RGB)."""
    import cv2

    h, w = img.shape[:2]
    if min(h, w) >= MIN_DISPLAY_SIDE:
        return img
    scale = MIN_DISPLAY_SIDE / min(h, w)
    return cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_NEAREST)


def show_image(img: np.ndarray, caption: str | None = None) -> None:
    st.image(for_display(img), caption=caption, clamp=True, width="stretch", output_format="PNG")


def safe_stem(name: str) -> str:
    """A file-name stem safe to reuse in a download name."""
    import re

    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name).split(".")[0]).strip("_")[:60]
    return stem or "image"


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- sources
def example_files() -> list[Path]:
    """Image files in `examples/` (none if the folder is absent or empty)."""
    try:
        files = [p for p in sorted(EXAMPLES_DIR.iterdir())
                 if p.is_file() and p.name.lower().endswith(EXAMPLE_SUFFIXES)]
    except OSError:
        return []
    return files


def example_source(path: Path) -> Source | None:
    try:
        return Source(path.name, path.read_bytes(), origin="example")
    except OSError:
        return None


def remember(sources: Sequence[Source]) -> None:
    """Keep recent uploads in session state (memory only) so other pages can reuse them."""
    store: dict[str, Source] = st.session_state.setdefault("_uploads", {})
    for s in sources:
        if s.origin == "upload":
            store.pop(s.key, None)
            store[s.key] = s
    while len(store) > MAX_REMEMBERED_UPLOADS or (
            len(store) > 1 and sum(len(s.data) for s in store.values()) > MAX_REMEMBERED_BYTES):
        store.pop(next(iter(store)))  # oldest first


def remembered() -> list[Source]:
    return list(reversed(list(st.session_state.get("_uploads", {}).values())))


def pick_source(key: str) -> Source | None:
    """An upload, an earlier upload of this session or an example; None if there is nothing."""
    uploaded = st.file_uploader("Upload an MRI slice or volume", type=UPLOAD_TYPES, key=f"{key}_upload",
                                help="PNG, JPEG, TIFF, DICOM or NIfTI. Files stay in memory.")
    if uploaded is not None:
        source = Source(uploaded.name, uploaded.getvalue())
        remember([source])
        return source
    choices: list[Source] = remembered() + [s for s in map(example_source, example_files()) if s]
    if not choices:
        st.info("Upload an image, or upload some on the Predict page first.")
        return None
    index = st.selectbox("…or choose an earlier upload or an example", range(len(choices)), key=f"{key}_choice",
                         format_func=lambda i: f"{'Example' if choices[i].origin == 'example' else 'Upload'}: "
                                               f"{choices[i].name}")
    return choices[index]


def require_slice(key: str) -> tuple[Source, int | None, np.ndarray]:
    """The picked image, its slice index and the slice; stops the page (plain error) if unreadable."""
    source = pick_source(key)
    if source is None:
        st.stop()
    try:
        slice_index = slice_picker(source, key)
        return source, slice_index, load_slice(source, slice_index)
    except ImageLoadError as exc:
        st.error(f"{esc(source.name)} could not be read: {esc(exc)}")
        st.stop()


# ----------------------------------------------------------------------------- page chrome
def page_header(title: str, intro: str | None = None) -> None:
    """Every page starts with its title and the disclaimer (each page renders it itself, so it shows
    even if a page file is ever run on its own)."""
    st.title(title)
    show_disclaimer()
    if intro:
        st.caption(intro)


def show_disclaimer() -> None:
    st.warning(DISCLAIMER, icon="⚠️")


def warnings_for(prediction: Prediction) -> None:
    for w in prediction.warnings:
        st.warning(esc(w))


def mapping_table(data: dict) -> None:
    """Show a dict (e.g. a card's `faithfulness` or `bench`) as a table, or as JSON if deeply nested."""
    import pandas as pd

    def cell(v: Any) -> str:
        return json.dumps(v) if isinstance(v, (list, dict)) else str(v)

    if data and all(isinstance(v, dict) for v in data.values()):  # {method: {metric: value}}
        rows = {k: {kk: (vv if isinstance(vv, (int, float)) and not isinstance(vv, bool) else cell(vv))
                    for kk, vv in v.items()} for k, v in data.items()}
        st.dataframe(pd.DataFrame.from_dict(rows, orient="index"))
    elif data and not any(isinstance(v, dict) for v in data.values()):  # flat {field: value}
        st.dataframe(pd.DataFrame({"field": list(data), "value": [cell(v) for v in data.values()]}),
                     hide_index=True)
    else:
        st.json(data, expanded=False)


def bench_value(card: dict, *keys: str) -> float | None:
    """The first numeric `bench[key]` of the card's optional `bench` section (see mrivision.bench.latency)."""
    bench = card.get("bench")
    if not isinstance(bench, dict):
        return None
    for k in keys:
        v = bench.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def bench_latency_ms(card: dict) -> float | None:
    """Batch-1 prediction latency (ms, p50) from the card's `bench`, if it has one."""
    value = bench_value(card, "predict_ms_p50")
    if value is not None:
        return value
    bench = card.get("bench")
    if not isinstance(bench, dict):
        return None
    for d in [bench] + [v for v in bench.values() if isinstance(v, dict)]:  # other layouts
        for k, v in d.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and "latency" in k.lower():
                return float(v) * (1000.0 if k.lower().endswith(("_s", "seconds")) else 1.0)
    return None


def split_label(card: dict) -> str:
    """How the model's validation split was made (flags the deliberately leaky random split)."""
    return str((card.get("training") or {}).get("split") or "")


def agreement(labels_by_model: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[str, str]]:
    """Agreement summary lines (level, text) for (predicted label, model class names) pairs.

    Models are compared within the same class set; when models with different class sets are
    present, every prediction is also folded to NonDemented vs any dementia stage.
    """
    from collections import Counter

    lines: list[tuple[str, str]] = []
    groups: dict[tuple[str, ...], list[str]] = {}
    for label, names in labels_by_model:
        groups.setdefault(tuple(names), []).append(label)

    def summary(labels: list[str], what: str) -> tuple[str, str]:
        votes = Counter(labels).most_common()
        if len(labels) == 1:
            return "info", f"{what}: one model, predicting {votes[0][0]}."
        if len(votes) == 1:
            return "success", f"{what}: all {len(labels)} models predict {votes[0][0]}."
        split = ", ".join(f"{label}: {n}" for label, n in votes)
        return "warning", f"{what}: the {len(labels)} models disagree ({split})."

    for names, labels in groups.items():
        what = "Four-stage models" if names == CLASS_NAMES else f"Models with classes {' / '.join(names)}"
        lines.append(summary(labels, what))
    if len(groups) > 1:
        folded = ["NonDemented" if label == "NonDemented" else "Demented" for label, _ in labels_by_model]
        lines.append(summary(folded, "NonDemented vs any dementia stage, all models"))
    return lines


def class_index(names: Sequence[str], label: str) -> int:
    try:
        return list(names).index(label)
    except ValueError:
        return 0


__all__ = ["DISCLAIMER", "ImageLoadError", "ModelEntry", "Source"]
