"""Engine files for a weights folder's models: `mrivision export` writes them, and the app starts the
same export in a background process on its first start when some are missing (a fresh clone or a
fresh install), so that from then on a model loads and predicts without torch (`engine_file`).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from mrivision.constants import WEIGHTS_DIR, WEIGHTS_ENV, weights_dir
from mrivision.errors import ModelLoadError
from mrivision.inference.engine_file import engine_path, load_engine
from mrivision.model.card import ModelCard, list_shipped, resolve, weights_of


@dataclass(frozen=True)
class Exported:
    """One model's outcome: `path` written or up to date, else `status` says why not."""

    name: str
    path: Path | None
    status: str  # "written", "up to date", or why no file was written

    @property
    def ok(self) -> bool:
        return self.path is not None


def export_engine_files(names: Sequence[str] | None = None, force: bool = False) -> Iterator[Exported]:
    """Write the engine file of each model (default: every one in the weights folder) that has no
    current one (`force`: every one), one model at a time."""
    for name in names or list_shipped():
        try:
            weights, card_path = resolve(name)
            card = ModelCard.read(card_path)
            if not force and load_engine(weights, card) is not None:
                yield Exported(name, engine_path(weights), "up to date")
                continue
            if not card.weights_sha256:
                raise ModelLoadError(f"{card_path} records no weights_sha256: an engine file could never be matched to it")
            from mrivision.inference.in_memory import export_engine
            from mrivision.model.weights import load_weights

            model, card = load_weights(weights)
            yield Exported(name, export_engine(model, weights, card.weights_sha256), "written")
        except (ModelLoadError, KeyError, ValueError, TypeError, OSError) as exc:
            yield Exported(name, None, str(exc))


def missing_engine_files(directory: Path | None = None) -> list[str]:
    """Names of the models in `directory` (default: the weights folder) without an engine file."""
    directory = weights_dir() if directory is None else Path(directory)
    return [name for name in list_shipped(directory) if not engine_path(weights_of(directory / f"{name}.json")).is_file()]


_STARTED: dict[str, subprocess.Popen | None] = {}  # per folder: the child, or None when nothing was missing
_START_LOCK = threading.Lock()


def start_background_export(directory: Path | None = None) -> subprocess.Popen | None:
    """Once per process and folder: `mrivision export` for `directory` (default: the weights folder)
    in a child process at low priority, when some model there has no engine file. The child holds
    neither this process's CPU share nor its interpreter lock; its files are written atomically, and
    models loaded before it finishes still run (on the in-memory engine). None: nothing to do."""
    key = str(directory or "")
    with _START_LOCK:
        if key in _STARTED:
            return None
        _STARTED[key] = None
        if not missing_engine_files(directory):
            return None
        env = dict(os.environ)
        if directory is not None:
            env[WEIGHTS_ENV] = str(directory)
        code = ("import os, sys\nif hasattr(os, 'nice'): os.nice(10)\n"
                "from mrivision.cli import main\nsys.exit(main(['export']))")
        _STARTED[key] = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return _STARTED[key]


def export_shipped_in_background() -> subprocess.Popen | None:
    """`start_background_export` of the shipped models, when they are the ones in use (the app's
    first start on a fresh clone or install; $MRIVISION_WEIGHTS_DIR unset)."""
    if os.environ.get(WEIGHTS_ENV, "").strip():
        return None
    return start_background_export(WEIGHTS_DIR)
