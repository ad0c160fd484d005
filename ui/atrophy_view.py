"""The tissue panel beside the stage: each atrophy measure with its percentile among the training
set's NonDemented subjects (a bar with their 5th-95th percentile range), and a toggle that shows
the tissue segmentation over the framed slice. The measures are `mrivision.measure_atrophy`'s."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from mrivision import Volume, measure_atrophy
from mrivision.anatomy.atrophy import (MEASURE_LABELS, MEASURES, REFERENCE_RANGE, AtrophyMeasures, auc_results,
                                      reference, reference_range)
from mrivision.anatomy.tissue import legend, overlay
from mrivision.evaluation.tables import value_with_ci
from ui import page
from ui.text import NOT_MEASURED, esc

REFERENCE_NOTE = ("Percentile among the NonDemented subjects of this project's training set ({n} subjects, "
                  "their mean over slices at the trained level); the shaded band is their {lo:.0f}th-{hi:.0f}th "
                  "percentile range. This is not an age-matched normative group. Shares of the brain's "
                  "cross-section on the framed slice{s}.")


@st.cache_data(show_spinner=False, max_entries=128)
def _measure(image_key: str, _src: np.ndarray | Volume, slices: tuple[int, ...] | None) -> AtrophyMeasures | str:
    try:
        return measure_atrophy(_src, slices) if isinstance(_src, Volume) else measure_atrophy(_src)
    except ValueError as exc:  # no brain found: shown as a plain sentence
        return str(exc)


def _label_side(percentile: float) -> str:
    """Where a marker's label goes so that it stays inside the plot at either end of the axis."""
    return "top right" if percentile < 20 else "top left" if percentile > 80 else "top center"

def percentile_figure(m: AtrophyMeasures) -> go.Figure:
    """One row per measure: the 0-100 percentile axis, the reference band, and the measure's percentile."""
    names = [MEASURE_LABELS[k] for k in MEASURES]
    lo, hi = REFERENCE_RANGE
    fig = go.Figure(go.Bar(x=[hi - lo] * len(names), base=[lo] * len(names), y=names, orientation="h",
                           marker_color="rgba(120,120,120,0.25)", hoverinfo="skip", showlegend=False))
    ranges = [reference_range(k) for k in MEASURES]
    fig.add_trace(go.Scatter(
        x=[m.percentiles[k] for k in MEASURES], y=names, mode="markers+text", marker=dict(size=13, color="#0072B2"),
        text=[f"{getattr(m, k):.1%} (p{m.percentiles[k]:.0f})" for k in MEASURES],
        textposition=[_label_side(m.percentiles[k]) for k in MEASURES],
        customdata=[[f"{a:.1%}", f"{b:.1%}"] for a, b in ranges], showlegend=False,
        hovertemplate="%{text}<br>reference range %{customdata[0]} to %{customdata[1]}<extra></extra>"))
    fig.update_layout(xaxis=dict(range=[-4, 104], title="percentile (NonDemented training subjects)"),
                      yaxis=dict(autorange="reversed"), height=90 + 48 * len(names),
                      margin=dict(l=10, r=10, t=20, b=10))
    return fig


def panel(image_key: str, src: np.ndarray | Volume, key: str,
          slices: Sequence[int] | None = None) -> AtrophyMeasures | None:
    """The tissue panel for a slice (a 2-D array) or a scan (`Volume` and the slices to average)."""
    st.subheader("Tissue measures")
    m = _measure(image_key, src, None if slices is None else tuple(int(i) for i in slices))
    if isinstance(m, str):
        st.info(f"Tissue could not be measured: {esc(m)}")
        return None
    st.plotly_chart(percentile_figure(m), key=f"atrophy_{key}")
    over = f"s (mean over {len(m.slices_used)} slices)" if isinstance(src, Volume) else ""
    st.caption(REFERENCE_NOTE.format(n=len(reference()[MEASURES[0]]), lo=REFERENCE_RANGE[0], hi=REFERENCE_RANGE[1],
                                     s=over))
    if st.toggle("Show the tissue segmentation", key=f"atrophy_seg_{key}"):
        middle = f" (slice {m.segmented_slice})" if isinstance(src, Volume) else ""
        page.show_image(overlay(m.canvas, m.segmentation), caption=f"Segmentation on the framed slice{middle}: "
                                                                    f"{legend()}.")
    return m


def auc_section() -> None:
    """The Metrics page's table: each measure's impaired-vs-NonDemented AUC on train/ subjects and on
    the external cohort, with 95% CIs (`scripts/measure_atrophy_auc.py`)."""
    results = auc_results()
    if not results:
        return
    st.subheader("Atrophy measures (no model)")
    rows = [{"measure": r["label"], "impaired when": r["direction"],
             "train/ subjects AUC [95% CI]": value_with_ci(r, "cv", "auc", missing=NOT_MEASURED),
             "external cohort AUC [95% CI]": value_with_ci(r, "external", "auc", missing=NOT_MEASURED)}
            for r in results["measures"].values()]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(f"How well each tissue measure of `measure_atrophy` separates impaired from NonDemented, with no "
               f"training: on the {results['cv']['n']} pseudo-subjects of train/ (each subject's mean over its "
               f"slices) and on the {results['external']['n']} sessions of the external cohort "
               f"({results['external']['n_subjects']} subjects; one slice each). CIs: bootstrap over subjects.")
