"""Data sets: class trees with aliases, Parquet (bytes and {"bytes": ...}), manifests, scan groups."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from synthetic import make_slice, write_png

from mrivision.constants import BINARY_CLASS_NAMES, CLASS_NAMES, canonical_class
from mrivision.inputs.datasets import (encode_png, fingerprint, group_split, load_dataset, pseudo_scan_groups, read_sample,
                            scan_group)


@pytest.mark.parametrize("name,expected", [
    ("No Impairment", "NonDemented"), ("Non_Demented", "NonDemented"), ("Very Mild Impairment", "VeryMildDemented"),
    ("Mild Dementia", "MildDemented"), ("moderate_demented", "ModerateDemented"), ("MildDemented", "MildDemented"),
])
def test_class_aliases(name, expected):
    assert canonical_class(name) == expected


def test_unknown_class_name_is_rejected():
    with pytest.raises(ValueError, match="unknown class"):
        canonical_class("Glioma")


@pytest.mark.parametrize("filename,group", [
    ("26 (19).jpg", "MildDemented/scan19"), ("26.jpg", "MildDemented/scan0"), ("mildDem12.jpg", None),
])
def test_scan_group_parsing(filename, group):
    assert scan_group("MildDemented", filename) == group


def test_tree_with_alias_folders_and_scan_groups(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "No Impairment" / "30 (2).png", make_slice(0, rng))
    write_png(tmp_path / "No Impairment" / "31 (2).png", make_slice(0, rng))
    write_png(tmp_path / "Mild Dementia" / "30.png", make_slice(2, rng))
    samples = load_dataset(tmp_path)
    assert [s.label for s in samples] == [2, 0, 0]
    assert samples[1].group == samples[2].group == "NonDemented/scan2"
    assert read_sample(samples[0]).shape == (48, 40)


def test_binary_labels_fold_the_dementia_stages(tmp_path):
    rng = np.random.default_rng(0)
    for k, cls in enumerate(CLASS_NAMES):
        write_png(tmp_path / cls / "a.png", make_slice(k, rng))
    assert sorted(s.label for s in load_dataset(tmp_path, BINARY_CLASS_NAMES)) == [0, 1, 1, 1]


@pytest.mark.parametrize("wrap", [False, True], ids=["raw-bytes", "dict-bytes"])
@pytest.mark.parametrize("label_kind", ["int", "str"])
def test_parquet_images(tmp_path, wrap, label_kind):
    rng = np.random.default_rng(1)
    imgs = [make_slice(k % 4, rng) for k in range(8)]
    cells = [{"bytes": encode_png(im), "path": None} if wrap else encode_png(im) for im in imgs]
    labels = [k % 4 for k in range(8)] if label_kind == "int" else [CLASS_NAMES[k % 4] for k in range(8)]
    path = tmp_path / "data.parquet"
    pd.DataFrame({"image": cells, "label": labels}).to_parquet(path)
    samples = load_dataset(path, label_names=CLASS_NAMES if label_kind == "int" else None)
    assert [s.label for s in samples] == [k % 4 for k in range(8)]
    np.testing.assert_allclose(read_sample(samples[3]), np.round(imgs[3] * 255) / 255, atol=1 / 255)


def test_parquet_integer_labels_with_other_order(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "d.parquet"
    pd.DataFrame({"image": [encode_png(make_slice(0, rng))], "label": [2]}).to_parquet(path)
    # A common public export orders labels Mild, Moderate, Non, VeryMild.
    order = ["Mild_Demented", "Moderate_Demented", "Non_Demented", "Very_Mild_Demented"]
    assert load_dataset(path, label_names=order)[0].label == 0


def write_hf_parquet(path, images, labels, names) -> None:
    """A Parquet file as Hugging Face `datasets` writes it: `image` = {bytes, path}, integer `label`,
    and the features (an Image and a ClassLabel with its names) in the schema's `huggingface` metadata."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array([{"bytes": encode_png(im), "path": None} for im in images], image_type),
                      "label": pa.array(labels, pa.int64())})
    features = {"image": {"_type": "Image"}, "label": {"names": list(names), "_type": "ClassLabel"}}
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, path)


def test_hugging_face_parquet_class_names_come_from_its_metadata(tmp_path):
    rng = np.random.default_rng(4)
    names = ["Mild_Demented", "Moderate_Demented", "Non_Demented", "Very_Mild_Demented"]  # a public export's order
    truth = [0, 1, 2, 3, 2]  # in our order: NonDemented, VeryMild, Mild, Moderate, Mild
    ours_to_theirs = {0: 2, 1: 3, 2: 0, 3: 1}
    path = tmp_path / "hf.parquet"
    write_hf_parquet(path, [make_slice(k, rng) for k in truth], [ours_to_theirs[k] for k in truth], names)
    assert [s.label for s in load_dataset(path)] == truth


def test_integer_labels_without_names_are_refused(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "plain.parquet"
    pd.DataFrame({"image": [encode_png(make_slice(0, rng))], "label": [2]}).to_parquet(path)
    with pytest.raises(ValueError, match="--label-names"):
        load_dataset(path)
    write_png(tmp_path / "a.png", make_slice(0, rng))
    (tmp_path / "m.csv").write_text("path,label\na.png,1\n")
    with pytest.raises(ValueError, match="--label-names"):
        load_dataset(tmp_path / "m.csv")


def test_manifest_relative_paths_and_groups(tmp_path):
    rng = np.random.default_rng(2)
    write_png(tmp_path / "imgs" / "a.png", make_slice(1, rng))
    write_png(tmp_path / "imgs" / "b.png", make_slice(3, rng))
    (tmp_path / "m.csv").write_text("path,label,group\nimgs/a.png,VeryMildDemented,s1\nimgs/b.png,3,s2\n")
    samples = load_dataset(tmp_path / "m.csv", label_names=CLASS_NAMES)
    assert [(s.label, s.group) for s in samples] == [(1, "s1"), (3, "s2")]
    assert read_sample(samples[1]).shape == (48, 40)


def test_manifest_missing_columns(tmp_path):
    (tmp_path / "m.csv").write_text("file,y\na.png,1\n")
    with pytest.raises(ValueError, match="path,label"):
        load_dataset(tmp_path / "m.csv")


def _scan(rng: np.random.Generator, label: int, n: int) -> list[np.ndarray]:
    """Neighbouring slices of one scan: one base slice with small drifts."""
    texture = cv2.GaussianBlur(rng.normal(0, 1, (48, 40)).astype(np.float32), (0, 0), 3)
    base = make_slice(label, rng) * (1 + texture / np.abs(texture).max())
    return [np.clip(base + rng.normal(0, 0.01, base.shape).astype(np.float32), 0, 1) for _ in range(n)]


def test_pseudo_scans_recover_scans_and_split_never_shares_one():
    rng = np.random.default_rng(3)
    images, labels, truth = [], [], []
    for scan in range(12):
        label = scan % 2
        for im in _scan(rng, label, 5):
            images.append(im), labels.append(label), truth.append(scan)
    groups = pseudo_scan_groups(images, labels, threshold=0.97)
    # every true scan maps to exactly one pseudo-scan, and no pseudo-scan mixes scans
    assert all(len({g for g, t in zip(groups, truth) if t == s}) == 1 for s in range(12))
    assert len(set(groups)) == 12
    from mrivision.inputs.datasets import Sample

    samples = [Sample(f"x{i}", lab, g, f"x{i}") for i, (lab, g) in enumerate(zip(labels, groups))]
    train, val = group_split(samples, 0.25, seed=0)
    assert val and train and not ({s.group for s in train} & {s.group for s in val})
    assert {s.label for s in val} == {0, 1}


def test_fingerprint_is_order_independent():
    from mrivision.inputs.datasets import Sample

    a = [Sample("p", 0, "g", n) for n in ("x", "y")]
    assert fingerprint(a) == fingerprint(a[::-1]) and fingerprint(a)["count"] == 2
