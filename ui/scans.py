"""Whole scans in the app: group uploads into scans, read them (messages name the file at fault),
cached scan predictions, and which slices the strip shows. The work itself is the package's
(`load_volume`, `predict_scan`)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import streamlit as st

from mrivision import ImageLoadError
from mrivision.inputs.volume import Volume, load_volume
from ui.catalogue import ModelEntry
from ui.sources import Source, describe, unreadable
from ui.text import esc

if TYPE_CHECKING:
    from mrivision import Predictor
    from mrivision.inference.scan import ScanPrediction

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
STRIP_SLICES = 6


@dataclass
class ScanSource:
    """The uploads that make one scan: a volume or zip on its own, the DICOM files together, or
    the 2-D pictures as a stack (one picture is a scan of one slice)."""

    label: str
    files: list[Source]

    @property
    def key(self) -> str:
        return hashlib.sha256("".join(f.key for f in self.files).encode()).hexdigest()


def _names(files: Sequence[Source], most: int = 3) -> str:
    names = [f.name for f in files[:most]]
    return ", ".join(names) + (f" and {len(files) - most} more" if len(files) > most else "")


def group_scans(sources: Sequence[Source]) -> list[ScanSource]:
    """Zips and volumes are scans on their own; all DICOM files form one series (mixed series are
    refused by `load_volume` with their numbers); the pictures form one stack. Labels name the files."""
    scans, dicom, pictures = [], [], []
    for s in sources:
        lower = s.name.lower()
        if lower.endswith(".dcm") or lower.endswith(".dicom"):
            dicom.append(s)
        elif lower.endswith(PICTURE_SUFFIXES):
            pictures.append(s)
        else:
            scans.append(ScanSource(s.name, [s]))
    if dicom:
        scans.append(ScanSource(f"DICOM series of {len(dicom)} files ({_names(dicom)})", dicom))
    if len(pictures) == 1:
        scans.append(ScanSource(pictures[0].name, pictures))
    elif pictures:
        scans.append(ScanSource(f"stack of {len(pictures)} pictures ({_names(pictures)})", pictures))
    return scans


def read_error(scan: ScanSource, exc: Exception) -> str:
    """The message for a scan that could not be read; it names the file at fault where one is."""
    if len(scan.files) > 1:
        for f in scan.files:
            try:
                describe(f)
            except ImageLoadError as bad:
                return unreadable(f.name, bad) + f" (part of the {esc(scan.label)}; nothing was staged)"
    return unreadable(scan.label, exc)


@st.cache_data(show_spinner=False, max_entries=16)
def _volume(key: str, _scan: ScanSource) -> Volume:
    return load_volume([f.data for f in _scan.files], names=[f.name for f in _scan.files])


def volume(scan: ScanSource) -> Volume:
    """The scan's slices (raises ImageLoadError with a plain message)."""
    return _volume(scan.key, scan)


@st.cache_data(show_spinner=False, max_entries=16)
def _predict_scan(model_key: str, key: str, _predictor: "Predictor", _volume: Volume) -> "ScanPrediction":
    return _predictor.predict_scan(_volume)


def predict_scan(entry: ModelEntry, predictor: "Predictor", scan: ScanSource) -> "ScanPrediction":
    return _predict_scan(entry.cache_key, scan.key, predictor, volume(scan))


def strip_slices(used: Sequence[int], most: int = STRIP_SLICES) -> list[int]:
    """Up to `most` of the used slices, spread evenly from the lowest to the highest of the band."""
    if len(used) <= most:
        return list(used)
    picks = np.unique(np.round(np.linspace(0, len(used) - 1, most)).astype(int))
    return [int(used[i]) for i in picks]


def placement_caption(result: "ScanPrediction") -> str:
    """The sagittal view's caption: where the used slices sit against the trained band."""
    if not result.slice_z_mm:
        return "Sagittal view. The scan could not be placed in standard brain space; orange: the slices used."
    z = [result.slice_z_mm[i] for i in result.slices_used]
    return (f"Sagittal view (front to the left). Green: the level of the training slices (MNI z "
            f"{result.band_mm[0]:.0f} to {result.band_mm[1]:.0f} mm); orange: the {len(z)} slices used "
            f"(z {min(z):.0f} to {max(z):.0f} mm).")
