"""A printable case report (PDF, fpdf2): the slice, its heatmap, the stage, the model's honest metrics.

Built in memory and returned as bytes (nothing is written unless the caller writes it). It holds
no file name and no DICOM field: nothing that could identify the patient goes in, except the free-text
case label the user types (never read from the file).
"""
from __future__ import annotations

import datetime as _dt
import io
from typing import TYPE_CHECKING

import cv2
import numpy as np
from fpdf import FPDF

from mrivision.evaluation.tables import binary_auc_with_ci, value_with_ci

if TYPE_CHECKING:
    from mrivision.inference.predictor import Prediction, Predictor
    from mrivision.model.card import ModelCard
    from mrivision.inference.scan import ScanPrediction
    from mrivision.anatomy.atrophy import AtrophyMeasures

MAX_LABEL_CHARS = 80
ATROPHY_SECTION_MM = 70  # the tissue section's height (title, note, bars and segmentation)
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


def _metric(card: ModelCard, key: str) -> str:
    """One line of the card's honest numbers for a data group (cv, external, test)."""
    m = card.metrics_for(key)
    if not m:
        return "not measured"
    missing = "not measured"  # the app's word too
    return (f"balanced accuracy {value_with_ci(m, 'scan', 'balanced_accuracy', missing)} (subject level); "
            f"accuracy {value_with_ci(m, 'slice', 'accuracy', missing)}; "
            f"impaired-vs-NonDemented AUC {binary_auc_with_ci(m, missing=missing)}")


def report_slice(result: "ScanPrediction") -> int:
    """The slice a scan's report shows (app and CLI alike): the used slice whose own probabilities
    are closest (L1) to the scan's, i.e. the most typical of the answer; ties go to the lower index."""
    scan = np.array(list(result.probabilities.values()))
    used = list(result.slices_used)
    distance = [float(np.abs(np.array(list(result.per_slice[i].probabilities.values())) - scan).sum()) for i in used]
    return int(used[int(np.argmin(distance))])


def _shown(result: "Prediction | ScanPrediction", slice_index: int | None) -> str:
    if hasattr(result, "slices_used"):
        i = report_slice(result) if slice_index is None else slice_index
        why = " (the used slice most typical of the scan's answer)" if i == report_slice(result) else ""
        return f"Shows slice {i} of {result.n_slices} (counted from 0){why}."
    if slice_index is not None:
        return f"Shows slice {slice_index} of the volume (counted from 0); the stage is this slice's."
    return "Shows the uploaded slice."


def clean_label(label: str | None) -> str:
    """The user's case label as printed: one line, Latin-1, at most MAX_LABEL_CHARS characters."""
    return _latin1(" ".join(str(label or "").split()))[:MAX_LABEL_CHARS]


def case_report(predictor: "Predictor", result: "Prediction | ScanPrediction", image: np.ndarray,
                heatmap: np.ndarray | None = None, when: _dt.datetime | None = None,
                slice_index: int | None = None, label: str | None = None,
                atrophy: "AtrophyMeasures | None" = None) -> bytes:
    """The PDF bytes of a one-page case report for `result` on `image` (the slice shown).

    `when`: the time printed as Created (default: now, i.e. when the report is made); `slice_index`:
    which slice of the volume `image` is (a scan's default: `report_slice`); `label`: the user's case
    label (free text typed by the user, never taken from the file); `atrophy`: the tissue measures to
    print with their percentiles among NonDemented training subjects (`mrivision.measure_atrophy`).
    """
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
    if clean_label(label):
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 6, f"Case: {clean_label(label)}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 5, f"Created {when:%Y-%m-%d %H:%M:%S}. Model {_latin1(predictor.name)}, weights SHA-256 "
                   f"{(card.weights_sha256 or 'unknown')[:16]}...", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, _shown(result, slice_index), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    y = pdf.get_y()
    img = np.clip(np.asarray(image, np.float32), 0, 1)
    pdf.image(_png(img), x=pdf.l_margin, y=y, w=80)
    if heatmap is not None:
        from mrivision.explain.heatmap import overlay

        pdf.image(_png(overlay(img, heatmap)), x=pdf.l_margin + 90, y=y, w=80)
    pdf.set_y(y + 80 * img.shape[0] / img.shape[1] + 3)
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(0, 4, "Left: the slice. Right: heatmap of the predicted stage (where the model looked; "
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
        _placement_section(pdf, result)
    if result.warnings:
        pdf.ln(1)
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(0, 5, "Warnings", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        for w in result.warnings:
            pdf.multi_cell(0, 4.5, _latin1("- " + w), new_x="LMARGIN", new_y="NEXT")
    if atrophy is not None:
        _atrophy_section(pdf, atrophy)
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 5, "How well this model does (from its model card, 95% CIs over subjects)", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    for label, key in (("New patients (subject-level cross-validation)", "cv"),
                       ("Another cohort (OASIS-2 external validation)", "external"),
                       ("Literature test split (other slices of seen subjects)", "test")):
        pdf.multi_cell(0, 4.5, f"{label}: {_metric(card, key)}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _placement_section(pdf: FPDF, result: "ScanPrediction") -> None:
    """Where the used slices sit: the scan's sagittal view (band shaded, used slices drawn) and a line."""
    if result.slice_z_mm:
        z = [result.slice_z_mm[i] for i in result.slices_used]
        text = (f"Used slices at MNI z {min(z):.0f} to {max(z):.0f} mm; the training slices lie at "
                f"{result.band_mm[0]:.0f} to {result.band_mm[1]:.0f} mm (green).")
    else:
        text = "The scan could not be placed in standard brain space; slices were chosen by cross-section."
    if result.sagittal is None:
        pdf.multi_cell(0, 4.5, text, new_x="LMARGIN", new_y="NEXT")
        return
    h, w = result.sagittal.shape[:2]
    width = min(45.0, 30.0 * w / h)
    if pdf.get_y() + width * h / w + 6 > pdf.h - pdf.b_margin:
        pdf.add_page()
    top = pdf.get_y() + 1
    pdf.image(_png(result.sagittal.astype(np.float32) / 255.0), x=pdf.l_margin, y=top, w=width)
    pdf.set_xy(pdf.l_margin + width + 3, top)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(0, 4, text + " Left: a sagittal view of the scan (front to the left); orange lines: the "
                   "slices used.", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(pdf.get_y(), top + width * h / w + 1))
    pdf.set_font("Helvetica", "", 10)


def _atrophy_section(pdf: FPDF, m: "AtrophyMeasures") -> None:
    """Each tissue measure with a bar of its percentile among NonDemented training subjects (their
    5th-95th percentile range shaded), and the segmentation of the framed slice beside them."""
    from mrivision.anatomy.atrophy import MEASURE_LABELS, MEASURES, REFERENCE_RANGE, reference, reference_range
    from mrivision.anatomy.tissue import legend, overlay

    if pdf.get_y() + ATROPHY_SECTION_MM > pdf.h - pdf.b_margin:  # drawn at fixed places: keep it on one page
        pdf.add_page()
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 10)
    over = f", mean over {len(m.slices_used)} slices" if m.n_slices > 1 else ""
    pdf.cell(0, 5, f"Tissue measures (share of the brain's cross-section{over})", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8)
    lo, hi = REFERENCE_RANGE
    pdf.multi_cell(0, 4, f"Percentile among the {len(reference()[MEASURES[0]])} NonDemented subjects of the training "
                         f"set (their mean over slices); the grey band is their {lo:.0f}th-{hi:.0f}th percentile "
                         "range. The reference group is the training set's NonDemented subjects, not age-matched "
                         "norms.", new_x="LMARGIN", new_y="NEXT")
    top, x0, bar_w, seg_w = pdf.get_y() + 1, pdf.l_margin, 50.0, 30.0
    pdf.image(_png(overlay(m.canvas, m.segmentation)), x=pdf.w - pdf.r_margin - seg_w, y=top, w=seg_w)
    for row, name in enumerate(MEASURES):
        y, bx = top + 7 * row, x0 + 52
        pdf.set_xy(x0, y)
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(50, 5, f"{MEASURE_LABELS[name]}: {getattr(m, name):.1%}")
        pdf.set_fill_color(215, 215, 215)
        pdf.rect(bx + bar_w * lo / 100, y + 1, bar_w * (hi - lo) / 100, 3, style="F")
        pdf.rect(bx, y + 1, bar_w, 3)
        pdf.set_fill_color(0, 114, 178)
        pdf.rect(bx + bar_w * m.percentiles[name] / 100 - 0.6, y, 1.2, 5, style="F")
        ref_lo, ref_hi = reference_range(name)
        pdf.set_xy(bx + bar_w + 2, y)
        pdf.set_font("Helvetica", "", 8)
        pdf.cell(45, 5, f"percentile {m.percentiles[name]:.0f} (range {ref_lo:.1%}-{ref_hi:.1%})")
    pdf.set_xy(x0, max(top + 7 * len(MEASURES), top + seg_w * m.canvas.shape[0] / m.canvas.shape[1]) + 1)
    which = f"slice {m.segmented_slice}, " if m.n_slices > 1 else ""
    pdf.multi_cell(0, 4, f"Right: the tissue segmentation ({which}framed): {legend()}.",
                   new_x="LMARGIN", new_y="NEXT")


def _latin1(text: str) -> str:
    """The built-in PDF fonts cover Latin-1 only."""
    return text.encode("latin-1", "replace").decode("latin-1")
