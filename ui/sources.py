"""Where images come from: uploads and examples as in-memory `Source`s, decoded slices, the slice
slider for volumes, and messages that name the file that could not be read.

Uploads never touch the disk: their bytes live in memory (Streamlit's upload manager, the
in-memory ``st.cache_data`` caches and session state) and are decoded with ``load_image(bytes)``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import streamlit as st

from mrivision import ImageLoadError
from mrivision.inputs.image import ImageInfo, describe_image, load_image
from ui.text import esc

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "examples"
UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "dcm", "nii", "gz"]
EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".nii", ".nii.gz")
MAX_REMEMBERED_UPLOADS = 8
MAX_REMEMBERED_BYTES = 100 * 1024 * 1024


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Source:
    """One image the user supplied: an upload (bytes in memory) or an example file's bytes."""

    name: str
    data: bytes
    origin: str = "upload"

    @property
    def key(self) -> str:
        return digest(self.data)


def from_uploads(uploads: Sequence | None) -> list[Source]:
    """Streamlit's uploaded files as Sources (bytes in memory)."""
    return [Source(u.name, u.getvalue()) for u in uploads or []]


def unreadable(name: str, exc: Exception) -> str:
    """The one message for a file that could not be read: it names the file."""
    return f"{esc(name)} could not be read: {esc(exc)}"


@st.cache_data(show_spinner=False, max_entries=64)
def _describe(key: str, name: str, _data: bytes) -> ImageInfo:
    return describe_image(_data, name=name)


@st.cache_data(show_spinner=False, max_entries=64)
def _load(key: str, name: str, slice_index: int | None, _data: bytes) -> np.ndarray:
    return load_image(_data, name=name, slice_index=slice_index)


def describe(source: Source) -> ImageInfo:
    return _describe(source.key, source.name, source.data)


def load_slice(source: Source, slice_index: int | None = None) -> np.ndarray:
    return _load(source.key, source.name, slice_index, source.data)


def image_key(source: Source, slice_index: int | None) -> str:
    return f"{source.key}:{slice_index}"


def slice_picker(source: Source, key: str) -> int | None:
    """A slider for volumes (describe_image n_slices > 1); None (the default slice) for 2-D images.

    Raises ImageLoadError for unreadable files.
    """
    info = describe(source)
    if info.n_slices <= 1:
        return None
    return st.slider(f"Slice (along axis {info.axis}; {info.n_slices} slices)", 0, info.n_slices - 1,
                     info.n_slices // 2, key=f"{key}_slice_{source.key[:16]}")


def example_files() -> list[Path]:
    """Image files in `examples/` (none if the folder is absent or empty)."""
    try:
        return [p for p in sorted(EXAMPLES_DIR.iterdir()) if p.is_file() and p.name.lower().endswith(EXAMPLE_SUFFIXES)]
    except OSError:
        return []


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
        st.error(unreadable(source.name, exc))
        st.stop()
