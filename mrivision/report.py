"""A printable case report (PDF, fpdf2): the slice, its heatmap, the stage, the model's honest metrics.

Built in memory and returned as bytes (nothing is written unless the caller writes it). It holds
no file name and no DICOM field: nothing that could identify the patient goes in.
"""
from __future__ import annotations

import datetime as _dt
import io
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from fpdf import FPDF

from mrivision.evaluation.metrics import binary_auc_with_ci, value_with_ci

if TYPE_CHECKING:
    from mrivision.inference.predictor import Prediction, Predictor
    from mrivision.inference.scan import ScanPrediction

DISCLAIMER = ("Research demo, not a medical device. This report is not a diagnosis and must not be used for "
              "diagnosis or treatment decisions.")


def _png(rgb_or_gray: np.ndarray) -> io.BytesIO:
    arr = np.clip(np.asarray(rgb_or_gray, np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise ValueError("could not encode the image for the report")
    return io.BytesIO(buf.tobytes())


def _metric(card: dict[str, Any], key: str) -> str:
    """One line of the card's honest numbers for a data group (cv, external, test)."""
    m = (card.get("metrics") or {}).get(key)
    if not m:
        return "not measured"
    return (f"balanced accuracy {value_with_ci(m, 'scan', 'balanced_accuracy')} (subject level); "
            f"accuracy {value_with_ci(m, 'slice', 'accuracy')}; "
            f"impaired-vs-NonDemented AUC {binary_auc_with_ci(m)}")


def case_report(predictor: "Predictor", result: "Prediction | ScanPrediction", image: np.ndarray,
                heatmap: np.ndarray | None = None, when: _dt.datetime | None = None) -> bytes:
    """The PDF bytes of a one-page case report for `result` on `image` (the slice shown)."""
    when = when or _dt.datetime.now()
    card = predictor.card
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, "MRI Vision - case report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_text_color(160, 0, 0)
    pdf.multi_cell(0, 5, DISCLAIMER, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 5, f"Created {when:%Y-%m-%d %H:%M}. Model {predictor.name}, weights SHA-256 "
                   f"{str(card.get('weights_sha256', 'unknown'))[:16]}...", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    y = pdf.get_y()
    img = np.clip(np.asarray(image, np.float32), 0, 1)
    pdf.image(_png(img), x=pdf.l_margin, y=y, w=80)
    if heatmap is not None:
        from mrivision.explain.cam import overlay

        pdf.image(_png(overlay(img, heatmap)), x=pdf.l_margin + 90, y=y, w=80)
    pdf.set_y(y + 80 * img.shape[0] / img.shape[1] + 3)
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(0, 4, "Left: the slice. Right: Grad-CAM heatmap of the predicted stage (where the model looked; "
                   "not a lesion map)." if heatmap is not None else "The slice.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 12)
    scan = hasattr(result, "slices_used")
    pdf.cell(0, 7, f"Model output: {result.label}" + (" (whole scan)" if scan else ""), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for name, p in result.probabilities.items():
        pdf.cell(0, 5, f"   {name}: {p:.1%}", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, f"Expected stage (0 = {predictor.class_names[0]} ... {len(predictor.class_names) - 1} = "
                   f"{predictor.class_names[-1]}): {result.expected_stage:.2f} +- {result.stage_spread:.2f}",
             new_x="LMARGIN", new_y="NEXT")
    if scan:
        pdf.cell(0, 5, f"Slices used: {len(result.slices_used)} of {result.n_slices}; slice agreement "
                       f"{result.agreement:.0%}", new_x="LMARGIN", new_y="NEXT")
    if result.warnings:
        pdf.ln(1)
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(0, 5, "Warnings", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        for w in result.warnings:
            pdf.multi_cell(0, 4.5, _latin1("- " + w), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 5, "How well this model does (from its model card, 95% CIs over subjects)", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    for label, key in (("New patients (subject-level cross-validation)", "cv"),
                       ("Another cohort (OASIS-2 external validation)", "external"),
                       ("Literature test split (other slices of seen subjects)", "test")):
        pdf.multi_cell(0, 4.5, f"{label}: {_metric(card, key)}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _latin1(text: str) -> str:
    """The built-in PDF fonts cover Latin-1 only."""
    return text.encode("latin-1", "replace").decode("latin-1")
