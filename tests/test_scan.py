"""Whole scans: load_volume (NIfTI, DICOM series, zip, stacks), predict_scan, the PDF case report,
the CLI and the Whole scan page; bad input gets one plain message and no patient field ever shows."""
from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset

from mrivision import ImageLoadError, load_volume
from mrivision.inference.predictor import Predictor
from mrivision.report import case_report
from mrivision.inputs.volume import MAX_ZIP_ENTRIES
from mrivision.model.weights import load_weights
from synthetic import make_slice

ROOT = Path(__file__).resolve().parent.parent
PHI = {"PatientName": "Doe^Jane", "PatientID": "PID-12345", "PatientBirthDate": "19400101",
       "AccessionNumber": "ACC-99887", "InstitutionName": "St Example Hospital", "ReferringPhysicianName": "Who^Doctor"}
PHI_STRINGS = ["Doe", "Jane", "PID-12345", "19400101", "ACC-99887", "St Example", "Who^Doctor", "Doctor"]


def dicom_slice(pixels: np.ndarray, z: float, series: str, *, normal_axis: str = "axial", number: int = 1,
                phi: bool = True) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dicom_uid.MRImageStorage
    meta.MediaStorageSOPInstanceUID = dicom_uid.generate_uid()
    meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = "MR", series, number, int(z) + 100
    if phi:
        for k, v in PHI.items():
            setattr(ds, k, v)
    ds.ImageOrientationPatient = {"axial": [1, 0, 0, 0, 1, 0], "axial_down": [1, 0, 0, 0, -1, 0],
                                  "axial_mirrored": [-1, 0, 0, 0, 1, 0], "sagittal": [0, 1, 0, 0, 0, -1]}[normal_axis]
    ds.ImagePositionPatient = [0.0, 0.0, float(z)] if normal_axis.startswith("axial") else [float(z), 0.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.round(pixels * 1000).astype(np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def small_brain(label: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """An off-level slice: the same kind of slice, its cross-section shrunk by `scale`."""
    img = make_slice(label, rng)
    h, w = img.shape
    small = cv2.resize(img, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)
    out = np.zeros_like(img)
    top, left = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[top:top + small.shape[0], left:left + small.shape[1]] = small
    return out


def scan_with_off_level(label: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Blank and shrunken slices below and above six at-level slices; returns the volume and their indices."""
    rng = np.random.default_rng(seed)
    real = [make_slice(label, rng) for _ in range(6)]
    below = [np.zeros_like(real[0]), small_brain(label, rng, 0.35), small_brain(label, rng, 0.55)]
    above = [small_brain(label, rng, 0.5), small_brain(label, rng, 0.3), np.zeros_like(real[0])]
    return np.stack(below + real + above), list(range(3, 9))


def nifti_bytes(slices: np.ndarray, gz: bool = False) -> bytes:
    """Axial slices (N, H, W), upright as load_image gives them, as a RAS+ NIfTI volume."""
    arr = np.stack([np.rot90(s, -1) for s in slices], axis=2).astype(np.float32)
    img = nib.Nifti1Image(arr, np.diag([1.0, 1.0, 2.0, 1.0]))
    data = img.to_bytes()
    return __import__("gzip").compress(data) if gz else data


def pdf_text(pdf: bytes) -> str:
    """All text of a PDF, its compressed content streams inflated."""
    parts = [pdf.decode("latin-1")]
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            parts.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            pass
    return "\n".join(parts)


@pytest.fixture(scope="module")
def predictor(tiny_model: Path) -> Predictor:
    return Predictor(*load_weights(tiny_model))


def test_nifti_volume_round_trip_and_spacing():
    vol, _ = scan_with_off_level(1, 0)
    v = load_volume(nifti_bytes(vol, gz=True), names=["scan.nii.gz"])
    assert v.slices.shape == vol.shape and v.source == "nifti" and v.spacing == (2.0, 1.0, 1.0)
    assert "patient's right on the image's right" in v.orientation  # RAS+ columns run to the patient's right
    np.testing.assert_allclose(v.slices, vol / vol.max(), atol=1e-6)  # one intensity scale for the scan


def test_dicom_series_whose_slice_normal_points_down_has_a_positive_spacing():
    rng = np.random.default_rng(2)
    slices = [make_slice(1, rng) for _ in range(4)]
    files = [dicom_slice(s, 4.0 * k, "1.2.4", normal_axis="axial_down") for k, s in enumerate(slices)]
    v = load_volume(files[::-1], names=[f"f{i}.dcm" for i in range(4)])
    assert v.spacing == (4.0, 1.0, 1.0)
    for k in range(4):  # inferior to superior, whatever way the normal points
        assert np.corrcoef(v.slices[k].ravel(), slices[k].ravel())[0, 1] > 0.99

def test_a_dicom_series_says_which_side_of_the_patient_is_on_the_right_of_the_image():
    rng = np.random.default_rng(3)
    files = [dicom_slice(make_slice(1, rng), float(k), "1.2.5", normal_axis="axial_mirrored") for k in range(3)]
    assert "patient's right on the image's right" in load_volume(files, names=["a.dcm", "b.dcm", "c.dcm"]).orientation


def test_dicom_series_is_sorted_by_position_and_zip_is_read_in_memory():
    rng = np.random.default_rng(1)
    slices = [make_slice(2, rng) for _ in range(5)]
    zs = [3.0, 0.0, 4.0, 1.0, 2.0]  # given out of order
    files = [dicom_slice(slices[int(z)], z, "1.2.3") for z in zs]
    v = load_volume(files, names=[f"f{i}.dcm" for i in range(5)])
    assert v.source == "dicom series" and v.spacing == (1.0, 1.0, 1.0)
    assert "patient's left on the image's right" in v.orientation  # rows along DICOM's +x, the patient's left
    for k in range(5):  # inferior to superior
        assert np.corrcoef(v.slices[k].ravel(), slices[k].ravel())[0, 1] > 0.99
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, f in enumerate(files):
            z.writestr(f"../../etc/series/im{i}.dcm", f)  # a path that must never be used
    assert load_volume(buf.getvalue(), names=["series.zip"]).slices.shape == v.slices.shape


def zip_of(entries: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def huge_nifti_header() -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape((4000, 4000, 4000))
    header.set_data_dtype(np.float32)
    return header.binaryblock + b"\0" * 4 + b"\0" * 64


BAD_SCANS = {
    "mixed series": ([dicom_slice(np.ones((20, 24)) * 0.5, 0, "1.1", number=3),
                      dicom_slice(np.ones((20, 24)) * 0.5, 1, "2.2", number=7)], "2 different series"),
    "sagittal series": ([dicom_slice(np.ones((20, 24)) * 0.5, z, "1.1", normal_axis="sagittal") for z in range(2)],
                        "sagittal"),
    "zip of too many files": ([zip_of({f"{i}.dcm": b"x" for i in range(MAX_ZIP_ENTRIES + 1)})], "at most"),
    "zip bomb": ([zip_of({"big.dcm": b"\0" * (60 * 1024 * 1024)}, zipfile.ZIP_DEFLATED)], "larger than"),
    "damaged zip": ([zip_of({"a.dcm": b"abc"})[:30]], "damaged"),
    "truncated nifti.gz": ([nifti_bytes(np.random.default_rng(0).random((4, 20, 24)), gz=True)[:2000]], "damaged"),
    "4-D nifti": ([nib.Nifti1Image(np.ones((20, 24, 4, 3), np.float32), np.eye(4)).to_bytes()], "4-D series"),
    "huge header": ([huge_nifti_header()], "too large"),
    "mixed formats": ([dicom_slice(np.ones((20, 24)) * 0.5, 0, "1.1"), cv2.imencode(".png", np.zeros((20, 20), np.uint8))[1].tobytes()],
                      "mix"),
}


@pytest.mark.parametrize("case", list(BAD_SCANS))
def test_bad_scans_get_one_plain_message(case, tmp_path, monkeypatch):
    files, expected = BAD_SCANS[case]
    names = ["x.zip" if f[:2] == b"PK" else "x.nii.gz" if f[:2] == b"\x1f\x8b" else "x.nii" if "nifti" in case
             or case == "huge header" else f"x{i}.dcm" if f[128:132] == b"DICM" else "x.png" for i, f in enumerate(files)]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImageLoadError, match=expected):
        load_volume(files, names=names)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_nan_volume_and_a_2d_file_as_a_volume():
    vol = np.stack([make_slice(1, np.random.default_rng(k)) for k in range(3)])
    vol[1, :5] = np.nan
    vol[2, -3:] = np.inf
    v = load_volume(nifti_bytes(vol), names=["v.nii"])
    assert np.isfinite(v.slices).all() and v.slices.min() >= 0 and v.slices.max() <= 1
    png = cv2.imencode(".png", (vol[0] * 255).astype(np.uint8))[1].tobytes()
    one = load_volume(png, names=["slice.png"])
    assert len(one) == 1 and one.source == "2-D image"


def test_scan_stage_comes_from_the_at_level_slices(predictor):
    for label in range(4):
        vol, real = scan_with_off_level(label, seed=10 + label)
        result = predictor.predict_scan(vol)
        assert list(result.slices_used) == real  # blank and shrunken slices are not used
        expected = predictor.predict_proba(list(vol[real])).mean(0)
        assert result.label == predictor.class_names[int(expected.argmax())]
        assert np.allclose(list(result.probabilities.values()), expected, atol=1e-6)
        assert len(result.per_slice) == len(vol) and 0 <= result.agreement <= 1
        assert 0 <= result.expected_stage <= 3 and result.stage_spread >= 0


def test_scan_without_any_brain_is_flagged(predictor):
    result = predictor.predict_scan(np.zeros((4, 48, 40), np.float32))
    assert any("No slice" in w for w in result.warnings)


def test_report_has_the_facts_and_no_patient_field(predictor):
    rng = np.random.default_rng(3)
    files = [dicom_slice(make_slice(1, rng), z, "9.9") for z in range(4)]
    volume = load_volume(files, names=[f"{i}.dcm" for i in range(4)])
    result = predictor.predict_scan(volume)
    img = volume.slices[result.slices_used[0]]
    text = pdf_text(case_report(predictor, result, img, predictor.explain(img)))
    assert result.label in text and "not a medical device" in text and predictor.card.weights_sha256[:16] in text
    assert "cross-validation" in text and "external" in text.lower()
    for s in PHI_STRINGS:
        assert s not in text, s


def test_cli_predicts_a_volume_and_writes_a_report(tiny_model, tmp_path, capsys):
    from mrivision.cli import main

    vol, real = scan_with_off_level(2, seed=5)
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(nifti_bytes(vol, gz=True))
    assert main(["predict", str(path), "--model", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert f"slices used: {', '.join(map(str, real))}" in out and "scan of 12 slices" in out
    rng = np.random.default_rng(4)
    dcm = []
    for z in range(3):
        dcm.append(tmp_path / f"s{z}.dcm")
        dcm[-1].write_bytes(dicom_slice(make_slice(1, rng), z, "5.5"))
    assert main(["predict", "--series", *map(str, dcm), "--model", str(tiny_model)]) == 0
    assert main(["report", *map(str, dcm), "--out", str(tmp_path / "case.pdf"), "--model", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "case.pdf").read_bytes().startswith(b"%PDF")
    for s in PHI_STRINGS:
        assert s not in out


def scan_page_with(name: str, data: bytes, mime: str):
    """The app's Whole scan page (AppTest) after uploading one file."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/scan.py")
    at.run()
    at.file_uploader(key="scan_uploads").set_value((name, data, mime))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_scan_page_shows_the_scan_stage_and_no_patient_field(tiny_model, monkeypatch):
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tiny_model.parent))
    rng = np.random.default_rng(6)
    series = zip_of({f"im{z}.dcm": dicom_slice(make_slice(2, rng), z, "7.7") for z in range(4)})
    at = scan_page_with("series.zip", series, "application/zip")
    assert [m.label for m in at.metric][:2] == ["Stage for the scan", "Expected stage"]
    shown = " ".join(str(e.value) for kind in ("markdown", "caption", "metric", "warning", "error", "info")
                     for e in getattr(at, kind))
    for s in PHI_STRINGS:
        assert s not in shown, s
