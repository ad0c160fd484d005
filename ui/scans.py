"""Streamlit helpers for whole scans and case reports: group uploads into scans, cached scan
predictions and reports. The work itself is the package's (`load_volume`, `predict_scan`, `case_report`)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import streamlit as st

from mrivision.inputs.volume import Volume, load_volume
from ui.common import ModelEntry, Source, describe

if TYPE_CHECKING:
    from mrivision import Prediction, Predictor
    from mrivision.inference.scan import ScanPrediction

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass
class ScanSource:
    """The uploads that make one scan: a volume or zip on its own, the DICOM files together, or
    several 2-D pictures as a stack."""

    label: str
    files: list[Source]

    @property
    def key(self) -> str:
        return hashlib.sha256("".join(f.key for f in self.files).encode()).hexdigest()


def group_scans(sources: Sequence[Source]) -> list[ScanSource]:
    """Zips and volumes are scans on their own; all DICOM files form one series (mixed series are
    refused by `load_volume` with their numbers); two or more pictures form one stack."""
    scans, dicom, pictures = [], [], []
    for s in sources:
        lower = s.name.lower()
        if lower.endswith(".dcm") or lower.endswith(".dicom"):
            dicom.append(s)
        elif lower.endswith(PICTURE_SUFFIXES):
            pictures.append(s)
        else:
            scans.append(ScanSource(f"scan {len(scans) + 1} ({_kind(s)})", [s]))
    if dicom:
        scans.append(ScanSource(f"scan {len(scans) + 1} (DICOM, {len(dicom)} files)", dicom))
    if len(pictures) >= 2:
        scans.append(ScanSource(f"scan {len(scans) + 1} ({len(pictures)} pictures)", pictures))
    return scans


def _kind(source: Source) -> str:
    if source.name.lower().endswith(".zip"):
        return "zip"
    try:
        return "volume" if describe(source).n_slices > 1 else "one slice"
    except ValueError:
        return "volume"  # load_volume says what is wrong with it


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


@st.cache_data(show_spinner=False, max_entries=32)
def _report(model_key: str, image_key: str, _predictor: "Predictor", _result, _img: np.ndarray,
            _heat: np.ndarray | None) -> bytes:
    from mrivision.report import case_report

    return case_report(_predictor, _result, _img, _heat)


def report_button(entry: ModelEntry, predictor: "Predictor", image_key: str,
                  result: "Prediction | ScanPrediction", img: np.ndarray, heat: np.ndarray | None) -> None:
    """A download button for the printable case report (PDF). The file name says nothing about the patient."""
    try:
        pdf = _report(entry.cache_key, image_key, predictor, result, img, heat)
    except Exception as exc:  # a report failure must not take the page down
        st.warning(f"The case report could not be made: {exc}")
        return
    st.download_button("Download case report (PDF)", pdf, file_name="mrivision_case_report.pdf",
                       mime="application/pdf", key=f"report_{image_key[:24]}")
