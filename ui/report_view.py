"""The case report in the app: a case-label field and a download button whose PDF is made when the
user clicks (so its Created time is the download time). The report itself is `mrivision.report`."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from mrivision.report import MAX_LABEL_CHARS, case_report

if TYPE_CHECKING:
    from mrivision import Prediction, Predictor
    from mrivision.anatomy.atrophy import AtrophyMeasures
    from mrivision.inference.scan import ScanPrediction

LABEL_KEY = "case_label"  # one label per session, shared by the pages


def report_button(predictor: "Predictor", result: "Prediction | ScanPrediction", img: np.ndarray,
                  heat: np.ndarray | None, slice_index: int | None, key: str,
                  atrophy: "AtrophyMeasures | None" = None) -> None:
    """A case-label field and a download button for the printable case report (PDF). The file name
    says nothing about the patient; the label is what the user types, never read from the file."""
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    label = left.text_input("Case label for the report (optional)", key=LABEL_KEY, max_chars=MAX_LABEL_CHARS,
                            placeholder="e.g. your own case number",
                            help="Free text printed on the report to tie it to a case. It is never read from "
                                 "the file (no DICOM field is used) and is kept only in this browser session.")

    def make() -> bytes:
        return case_report(predictor, result, img, heat, slice_index=slice_index, label=label, atrophy=atrophy)

    right.download_button("Download case report (PDF)", make, file_name="mrivision_case_report.pdf",
                          mime="application/pdf", key=f"report_{key[:24]}",
                          help="Made when you click: it says which model, which slice, when, and your label.")
