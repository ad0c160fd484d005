"""Plain text for the app: markdown-safe user text, numbers with one word for a missing value,
durations, short stage names and download-safe file stems."""
from __future__ import annotations

import re
import string
from typing import Any, Sequence

import numpy as np

from mrivision.evaluation.tables import format_ci

NOT_MEASURED = "not measured"  # the one word for a value a card does not record
SHORT_STAGES = {"NonDemented": "Non\u2011demented", "VeryMildDemented": "Very\u00a0mild", "MildDemented": "Mild",
                "ModerateDemented": "Moderate", "Demented": "Demented"}  # non-breaking: never cut mid-name
_MD_SPECIAL = set(string.punctuation)


def esc(text: object) -> str:
    """User-supplied text (file names, messages) made inert for Streamlit markdown.

    Every ASCII punctuation character is backslash-escaped (CommonMark allows this), so names
    such as ``**x**.png``, ``[a](b)``, ``:red[x]`` or ``$x$`` show literally. HTML is never enabled.
    """
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text).replace("\n", " "))


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def fmt(value: Any, digits: int = 3) -> str:
    """A number with `digits` decimals, or "not measured"."""
    return f"{value:.{digits}f}" if is_number(value) else NOT_MEASURED


def fmt_ci(ci: Sequence[float | None] | None, digits: int = 3) -> str:
    """"[low, high]" (the package's one CI format), or "not measured"."""
    if not ci or not is_number(ci[0]) or not is_number(ci[1]):
        return NOT_MEASURED
    return format_ci(ci, digits)


def cell(value: Any) -> str:
    """A table cell: the value as text, or "not measured"."""
    if value is None or value == "" or (isinstance(value, float) and not np.isfinite(value)):
        return NOT_MEASURED
    return fmt(value) if isinstance(value, float) else str(value)


def duration(seconds: object) -> str | None:
    if not is_number(seconds):
        return None
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m} min" if hours else f"{m} min {s} s"


def short_stage(name: str) -> str:
    """A stage name short enough for a narrow caption ("VeryMildDemented" -> "Very mild")."""
    return SHORT_STAGES.get(name, name)


def safe_stem(name: str) -> str:
    """A file-name stem safe to reuse in a download name."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name).split(".")[0]).strip("_")[:60]
    return stem or "image"
