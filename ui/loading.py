"""Models in memory: loading in a background thread (the page shows meanwhile), warm-up of the
heatmap machinery once the app is idle, and cached predictions."""
from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterator

import numpy as np
import streamlit as st

from mrivision import ModelLoadError
from ui.catalogue import ModelEntry
from ui.text import esc

if TYPE_CHECKING:  # torch loads in the background (`preload`), so the first page shows without waiting for it
    from mrivision import Prediction, Predictor

_LOADER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mrivision-load")
_WARMER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mrivision-warm")  # never delays a model load
IDLE_BEFORE_WARM_S = 2.0


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


def _cam_import() -> None:
    from ui.cam_view import cam_module

    cam_module()


def _load_in_background(path: str) -> Predictor:
    from mrivision import load_model

    predictor = load_model(path)
    if predictor.engine is None:  # predictions wait for torch anyway: build the fast engine meanwhile
        predictor.warm_up(background=True)
        _LOADER.submit(_cam_import)
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
    _cam_import()


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


@st.cache_data(show_spinner=False, max_entries=256)
def _predict(model_key: str, image_key: str, _predictor: Predictor, _img: np.ndarray) -> Prediction:
    return _predictor.predict(_img)


def predict(entry: ModelEntry, predictor: Predictor, image_key: str, img: np.ndarray) -> Prediction:
    """The model's answer for one slice, cached by model and `image_key` (`sources.image_key`)."""
    return _predict(entry.cache_key, image_key, predictor, img)
