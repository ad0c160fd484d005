"""Plotly figures for the app, built from Prediction objects and model-card result dicts."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10))
CLASS_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")  # Okabe-Ito


def probability_bar(probabilities: dict[str, float], predicted: str | None = None, title: str = "Class probabilities") -> go.Figure:
    names = list(probabilities)
    values = [probabilities[n] for n in names]
    colors = ["#d62728" if n == predicted else "#1f77b4" for n in names]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colors,
                           text=[f"{v:.1%}" for v in values], textposition="auto"))
    fig.update_layout(title=title, xaxis=dict(range=[0, 1], tickformat=".0%", title="probability"),
                      yaxis=dict(autorange="reversed"), height=80 + 45 * len(names), **_LAYOUT)
    return fig


def confusion_heatmap(matrix: Sequence[Sequence[float]], names: Sequence[str], normalized: bool, title: str) -> go.Figure:
    text = [[f"{v:.2f}" if normalized else f"{int(v)}" for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(z=matrix, x=list(names), y=list(names), text=text, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=1 if normalized else None,
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis=dict(autorange="reversed"),
                      height=420, **_LAYOUT)
    return fig


def roc_curves(roc: dict[str, dict]) -> go.Figure:
    """One curve per class, each in its own colour (colour-blind safe), the legend below the plot."""
    fig = go.Figure()
    for i, (name, curve) in enumerate(roc.items()):
        if not curve.get("fpr"):
            continue
        auc = curve.get("auc")
        label = f"{name} (AUC {auc:.3f})" if auc is not None else name
        fig.add_trace(go.Scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=label,
                                 line=dict(color=CLASS_COLOURS[i % len(CLASS_COLOURS)], width=2)))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dash", color="gray")))
    fig.update_layout(title="ROC curves (one-vs-rest, slice level)", xaxis_title="false positive rate",
                      yaxis_title="true positive rate", xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1.02]),
                      legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0),
                      height=500, **_LAYOUT)
    return fig


def reliability_diagram(bins: list[dict], ece: float | None) -> go.Figure:
    used = [b for b in bins if b.get("count") and b.get("accuracy") is not None]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=[b["center"] for b in used], y=[b["accuracy"] for b in used], name="accuracy",
                         width=[(b.get("upper", 0) - b.get("lower", 0)) * 0.9 or 0.05 for b in used],
                         customdata=[b["count"] for b in used],
                         hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>%{customdata} slices<extra></extra>"))
    fig.add_trace(go.Scatter(x=[b["center"] for b in used], y=[b["confidence"] for b in used], mode="markers",
                             name="mean confidence"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(dash="dash", color="gray")))
    title = "Reliability diagram" + (f" (ECE {ece:.3f})" if ece is not None else "")
    fig.update_layout(title=title, xaxis_title="confidence (max probability)", yaxis_title="accuracy",
                      xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1.02]), height=420, **_LAYOUT)
    return fig


def history_figure(history: list[dict], keys: Sequence[str], title: str, best_epoch: int | None = None,
                   log_y: bool = False) -> go.Figure | None:
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    fig = go.Figure()
    for key in keys:
        ys = [row.get(key) for row in history]
        if any(isinstance(y, (int, float)) for y in ys):
            fig.add_trace(go.Scatter(x=epochs, y=ys, mode="lines+markers", name=key))
    if not fig.data:
        return None
    if best_epoch:
        fig.add_vline(x=best_epoch, line_dash="dot", line_color="gray", annotation_text="best epoch")
    fig.update_layout(title=title, xaxis_title="epoch", height=340, **_LAYOUT)
    if log_y:
        fig.update_yaxes(type="log")
    return fig
