"""Data sets: a class-folder tree, a Parquet file or a CSV manifest -> a list of `Sample`s.

Every sample carries a group (a scan, or a pseudo-scan found by image similarity) so that
splits and bootstrap intervals respect the fact that neighbouring slices are near-duplicates.
"""
from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from mrivision.constants import BINARY_CLASS_NAMES, CLASS_NAMES, canonical_class
from mrivision.inputs.image import load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".dcm", ".nii", ".gz"}
MIN_GROUPS_FOR_VAL = 4
GROUP_COLUMNS = ("group", "scan", "session_id", "subject_id", "subject", "participant_id")  # scan column, first found
SUBJECT_COLUMNS = ("subject_id", "subject", "participant_id")  # the person, when scans are sessions of one
IMAGE_COLUMNS = ("image", "img", "image_bytes", "bytes")  # a Parquet file's image column, first found
LABEL_COLUMNS = ("label", "labels", "class", "target")
_SCAN_NAME = re.compile(r"^(?P<slice>\d+)(?: \((?P<scan>\d+)\))?\.[A-Za-z]+$")


@dataclass(frozen=True)
class Sample:
    """One slice: where its bytes are, its class index, its scan group and a display name."""

    source: str | bytes
    label: int
    group: str  # the scan (session) the slice belongs to
    name: str
    subject: str = ""  # the person, when one has several scans ("" : the scan is the subject)


def scan_group(class_name: str, filename: str) -> str | None:
    """`NN (k).jpg` is slice NN of scan k (no `(k)` means scan 0); None if the name says nothing."""
    m = _SCAN_NAME.match(filename)
    if not m:
        return None
    return f"{class_name}/scan{int(m.group('scan') or 0)}"


def label_index(name: str, class_names: Sequence[str]) -> int:
    """Class index of a label name (aliases allowed) in `class_names`; 4 stages fold into binary."""
    canon = canonical_class(name)
    if tuple(class_names) == BINARY_CLASS_NAMES and canon in CLASS_NAMES:
        return 0 if canon == "NonDemented" else 1
    if canon not in class_names:
        raise ValueError(f"label {name!r} is not one of {', '.join(class_names)}")
    return list(class_names).index(canon)


def load_dataset(path: str | Path, class_names: Sequence[str] = CLASS_NAMES,
                 label_names: Sequence[str] | None = None) -> list[Sample]:
    """Read a class-folder tree, a `.parquet` file or a `.csv` manifest.

    `label_names` maps integer labels (Parquet/CSV) to names; without it a Parquet file's own
    class names (the Hugging Face `datasets` ClassLabel in its schema metadata) are used, and
    integer labels with no names anywhere are refused rather than guessed.
    """
    path = Path(path)
    if path.is_dir():
        return _from_tree(path, class_names)
    if path.suffix.lower() == ".parquet":
        return _from_parquet(path, class_names, label_names)
    if path.suffix.lower() == ".csv":
        return _from_manifest(path, class_names, label_names)
    raise ValueError(f"{path} is not a folder of class folders, a .parquet file or a .csv manifest")


def _from_tree(root: Path, class_names: Sequence[str]) -> list[Sample]:
    samples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = label_index(folder.name, class_names)
        canon = canonical_class(folder.name)
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                group = scan_group(canon, f.name) or f"{canon}/{f.stem}"
                samples.append(Sample(str(f), label, group, f"{folder.name}/{f.name}"))
    if not samples:
        raise ValueError(f"no images found in class folders under {root}")
    return samples


def label_from_value(value: object, class_names: Sequence[str], label_names: Sequence[str] | None,
                      source: str) -> int:
    if isinstance(value, (int, np.integer)):
        if label_names is None:
            raise ValueError(f"{source}: labels are integers and nothing says which class each number is; "
                             f"give the names in order with --label-names (e.g. --label-names "
                             f"{','.join(class_names)})")
        if not 0 <= int(value) < len(label_names):
            raise ValueError(f"{source}: label {int(value)} has no name among {len(label_names)} label names")
        return label_index(label_names[int(value)], class_names)
    return label_index(str(value), class_names)


def parquet_label_names(path: Path, label_col: str) -> list[str] | None:
    """Class names of `label_col` stored by Hugging Face `datasets` (a ClassLabel in the schema's
    `huggingface` metadata), or None."""
    import json

    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"huggingface")
    if not raw:
        return None
    try:
        features = json.loads(raw).get("info", {}).get("features", {})
    except (ValueError, AttributeError):
        return None
    feature = features.get(label_col) if isinstance(features, dict) else None
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names"):
        return [str(n) for n in feature["names"]]
    return None


def image_bytes(value: object) -> bytes:
    if isinstance(value, dict):
        value = value.get("bytes")
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError("Parquet image cell holds neither bytes nor a {'bytes': ...} dict")
    return bytes(value)


def _from_parquet(path: Path, class_names: Sequence[str], label_names: Sequence[str] | None) -> list[Sample]:
    import pandas as pd

    df = pd.read_parquet(path)
    image_col = next((c for c in IMAGE_COLUMNS if c in df.columns), None)
    label_col = next((c for c in LABEL_COLUMNS if c in df.columns), None)
    if image_col is None or label_col is None:
        raise ValueError(f"{path.name}: need an image column and a label column, found {list(df.columns)}")
    label_names = label_names or parquet_label_names(path, label_col)
    group_col = "group" if "group" in df.columns else None
    samples = []
    for i, row in enumerate(df.itertuples(index=False)):
        d = row._asdict()
        label = label_from_value(d[label_col], class_names, label_names, path.name)
        group = str(d[group_col]) if group_col else f"row{i}"
        samples.append(Sample(image_bytes(d[image_col]), label, group, f"{path.name}#{i}"))
    return samples


def _from_manifest(path: Path, class_names: Sequence[str], label_names: Sequence[str] | None) -> list[Sample]:
    import pandas as pd

    df = pd.read_csv(path)
    if not {"path", "label"} <= set(df.columns):
        raise ValueError(f"{path.name}: a manifest needs columns path,label[,group], found {list(df.columns)}")
    group_col = next((c for c in GROUP_COLUMNS if c in df.columns), None)
    subject_col = next((c for c in SUBJECT_COLUMNS if c in df.columns), None)
    samples = []
    for i, row in df.iterrows():
        file = (path.parent / str(row["path"])).resolve()
        raw = row["label"]
        value = int(raw) if str(raw).strip().lstrip("-").isdigit() else str(raw)
        label = label_from_value(value, class_names, label_names, path.name)
        group = str(row[group_col]) if group_col and not _isna(row[group_col]) else str(row["path"])
        subject = str(row[subject_col]) if subject_col and not _isna(row[subject_col]) else ""
        samples.append(Sample(str(file), label, group, str(row["path"]), subject))
    return samples


def _isna(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def subjects_of(samples: Sequence[Sample]) -> list[str] | None:
    """Each sample's subject for the bootstrap, or None when every scan is its own subject."""
    if not any(s.subject for s in samples):
        return None
    return [s.subject or s.group for s in samples]


def read_sample(sample: Sample) -> np.ndarray:
    return load_image(sample.source, name=sample.name)


def thumbnails(images: Sequence[np.ndarray], size: tuple[int, int] = (52, 44)) -> np.ndarray:
    """Small zero-mean, unit-norm copies of the slices, for similarity grouping."""
    thumbs = np.stack([cv2.resize(im, (size[1], size[0]), interpolation=cv2.INTER_AREA).ravel() for im in images])
    thumbs = thumbs - thumbs.mean(axis=1, keepdims=True)
    return thumbs / np.maximum(np.linalg.norm(thumbs, axis=1, keepdims=True), 1e-8)


def pseudo_scan_groups(images: Sequence[np.ndarray], labels: Sequence[int], threshold: float = 0.97) -> list[str]:
    """Group slices of the same class whose thumbnails correlate above `threshold` (single linkage).

    Neighbouring slices of one scan correlate ~0.99, different scans far less; within-class linking
    makes each pseudo-scan a connected set of near-duplicates.
    """
    labels = np.asarray(labels)
    thumbs = thumbnails(images)
    groups = [""] * len(labels)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        corr = thumbs[idx] @ thumbs[idx].T
        parent = np.arange(len(idx))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for i, j in zip(*np.nonzero(np.triu(corr > threshold, 1))):
            parent[find(i)] = find(j)
        for k, i in enumerate(idx):
            groups[i] = f"c{cls}/p{find(k)}"
    return groups


def groups_by_class(samples: Sequence[Sample]) -> dict[int, list[str]]:
    """Each class's groups (scans or subjects), in order of first appearance."""
    by_class: dict[int, list[str]] = {}
    for s in samples:
        by_class.setdefault(s.label, [])
        if s.group not in by_class[s.label]:
            by_class[s.label].append(s.group)
    return by_class


def group_split(samples: Sequence[Sample], val_fraction: float = 0.15, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Split by group, stratified by class: no group appears on both sides."""
    rng = np.random.default_rng(seed)
    by_class = groups_by_class(samples)
    val_groups: set[str] = set()
    for label in sorted(by_class):
        groups = sorted(by_class[label])
        rng.shuffle(groups)
        # A class with very few scans keeps them all for training (validation skips it).
        n_val = max(1, round(len(groups) * val_fraction)) if len(groups) >= MIN_GROUPS_FOR_VAL else 0
        val_groups.update(groups[:n_val])
    train = [s for s in samples if s.group not in val_groups]
    val = [s for s in samples if s.group in val_groups]
    return train, val


def fingerprint(samples: Sequence[Sample]) -> dict[str, object]:
    """File count and a hash of the sorted names: identifies the data a model saw."""
    digest = hashlib.sha256("\n".join(sorted(s.name for s in samples)).encode()).hexdigest()
    return {"count": len(samples), "names_sha256": digest}


def encode_png(img: np.ndarray) -> bytes:
    """A [0,1] slice as 8-bit PNG bytes (for Parquet fixtures and downloads)."""
    ok, buf = cv2.imencode(".png", np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))
    if not ok:
        raise ValueError("could not encode image as PNG")
    return io.BytesIO(buf.tobytes()).getvalue()
