"""Whole scans placed by anatomy (issue 21): volumes made from the MNI152 template in other
geometries keep every used slice in the trained MNI band; every scan source is accepted; a scan
unlike the T1 training data is flagged as a whole."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from nibabel.orientations import io_orientation

from mrivision import ImageLoadError, load_model
from mrivision.anatomy.placement import TRAINED_MNI_Z_MM, brain_mask, place
from mrivision.anatomy.template import resample_template, rotation, scan_affine, scan_nifti, template
from mrivision.inference.scan import MAX_SLICES, WARNING_CONTRAST, WARNING_NO_GEOMETRY
from test_scan import dicom_slice, scan_page_with


def true_heights(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """MNI z of each slice (inferior to superior, as `load_volume` orders them) where it crosses the
    vertical line through the template brain's centre."""
    data, t_affine = template()
    cx, cy = (t_affine @ np.r_[np.argwhere(brain_mask(data)).mean(axis=0), 1.0])[:2]
    ornt = io_orientation(affine)
    zax = int(np.flatnonzero(ornt[:, 0] == 2)[0])
    order = range(shape[zax]) if ornt[zax, 1] > 0 else range(shape[zax] - 1, -1, -1)
    inplane = [a for a in range(3) if a != zax]
    out = []
    for k in order:
        uv = np.linalg.solve(affine[:2, inplane], np.array([cx, cy]) - affine[:2, 3] - affine[:2, zax] * k)
        v = np.zeros(3)
        v[inplane], v[zax] = uv, k
        out.append((affine @ np.r_[v, 1.0])[2])
    return np.array(out)


GEOMETRIES = {
    "1x1x3 mm RAS": dict(spacing=(1.0, 1.0, 3.0)),
    "0.5x0.5x5 mm": dict(spacing=(0.5, 0.5, 5.0), fov_mm=(180.0, 220.0)),
    "oblique 15/5 deg, LAS": dict(spacing=(1.0, 1.0, 2.0), storage="LAS", rotate=rotation(15, 0, 5)),
    "LPS 3 mm from above the cerebellum": dict(spacing=(1.0, 1.0, 3.0), storage="LPS", z_range=(-40.0, 89.0)),
    "partial coverage z -8..60": dict(spacing=(1.0, 1.0, 2.0), z_range=(-8.0, 60.0)),
}


@pytest.fixture(scope="module")
def predictor(tiny_model):
    return load_model(tiny_model)


def check_in_band(result, affine, shape) -> None:
    truth = true_heights(affine, shape)
    step = float(np.median(np.abs(np.diff(truth))))
    used = list(result.slices_used)
    assert 3 <= len(used) <= MAX_SLICES and not result.out_of_distribution
    assert all(TRAINED_MNI_Z_MM[0] - step <= truth[i] <= TRAINED_MNI_Z_MM[1] + step for i in used), truth[used]
    assert np.abs(np.array(result.slice_z_mm)[used] - truth[used]).max() < 2.0


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_used_slices_lie_in_the_trained_band(predictor, name):
    affine, shape = scan_affine(**GEOMETRIES[name])
    result = predictor.predict_scan(scan_nifti(affine, shape))
    check_in_band(result, affine, shape)
    assert result.sagittal is not None and result.sagittal.ndim == 3
    assert sum(p is not None for p in result.per_slice) <= MAX_SLICES  # only the band is predicted


def test_4d_with_one_volume_and_a_path(predictor, tmp_path):
    affine, shape = scan_affine((1.0, 1.0, 3.0))
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(scan_nifti(affine, (*shape, 1), gz=True))
    check_in_band(predictor.predict_scan(str(path)), affine, shape)


@pytest.fixture(scope="module")
def dicom_series(tmp_path_factory):
    """The template as an axial DICOM series (4 mm slices, LPS rows and columns, patient fields set)."""
    folder = tmp_path_factory.mktemp("series")
    affine, shape = scan_affine((1.0, 1.0, 4.0), "RAS", (-32.0, 60.0))
    ras = resample_template(affine, shape)
    files = []
    for k in range(shape[2]):  # DICOM stores rows anterior->posterior, columns right->left
        files.append(folder / f"im{k:03d}.dcm")
        files[-1].write_bytes(dicom_slice(np.ascontiguousarray(ras[::-1, ::-1, k].T), float(affine[2, 3] + 4.0 * k),
                                          "1.2.3", phi=True))
    return files, affine, shape


def test_a_dicom_series_in_any_order_a_folder_and_a_zip(predictor, dicom_series):
    files, affine, shape = dicom_series
    shuffled = [str(files[i]) for i in np.random.default_rng(0).permutation(len(files))]
    result = predictor.predict_scan(shuffled)
    check_in_band(result, affine, shape)
    assert predictor.predict_scan(str(files[0].parent)).slices_used == result.slices_used
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in files:
            z.write(f, f.name)
    assert predictor.predict_scan(buf.getvalue()).slices_used == result.slices_used


def test_cli_predicts_dicom_files_as_one_series(tiny_model, dicom_series, capsys):
    from mrivision.cli import main

    files, _, _ = dicom_series
    assert main(["predict", *map(str, files[::-1]), "--model", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert f"series of {len(files)} files (scan of {len(files)} slices)" in out and "at MNI z" in out
    assert "Doe" not in out and "PID-12345" not in out


def test_inverted_contrast_is_out_of_distribution_and_the_template_is_not(predictor):
    affine, shape = scan_affine((1.0, 1.0, 3.0), "LPS", (-40.0, 89.0))
    assert not predictor.predict_scan(scan_nifti(affine, shape)).out_of_distribution
    inverted = predictor.predict_scan(scan_nifti(affine, shape, intensity=lambda d: np.where(d > 0.03, 1 - d, 0)))
    assert inverted.out_of_distribution and WARNING_CONTRAST in inverted.warnings


def test_a_scan_that_cannot_be_placed_is_flagged_and_falls_back(predictor):
    from test_scan import nifti_bytes, scan_with_off_level

    vol, real = scan_with_off_level(1, seed=3)  # 12 unrelated 2-D slices stored as a 2 mm NIfTI: no brain to place
    result = predictor.predict_scan(nifti_bytes(vol))
    assert result.out_of_distribution and result.slice_z_mm == ()
    assert any("could not be placed in standard brain space" in w for w in result.warnings)
    assert list(result.slices_used) == real  # the cross-section rule
    pictures = predictor.predict_scan(vol)  # the same slices without geometry: judged by the slices alone
    assert not place(vol).placed and list(pictures.slices_used) == real
    assert WARNING_NO_GEOMETRY in pictures.warnings and not pictures.out_of_distribution


def test_bad_sources_get_one_plain_message(predictor, tmp_path):
    with pytest.raises(ImageLoadError, match="could not find"):
        predictor.predict_scan(str(tmp_path / "missing.nii.gz"))
    with pytest.raises(ImageLoadError, match="holds no files"):
        predictor.predict_scan(str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_scan_page_shows_where_the_used_slices_sit(tiny_model, monkeypatch):
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tiny_model.parent))
    data = scan_nifti(*scan_affine((1.0, 1.0, 3.0), "LPS", (-40.0, 89.0)), gz=True)
    at = scan_page_with("scan.nii.gz", data, "application/gzip")
    assert "Green: the level of the training slices (MNI z -3 to 23 mm)" in " ".join(image_captions(at))
    at.slider[0].set_value(0).run()  # a slice far below the band: predicted on demand
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.startswith("Slice 0, MNI z -4") and c.endswith("(not used)") for c in image_captions(at))


def image_captions(at) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def test_the_case_report_says_where_the_used_slices_sit(predictor):
    from mrivision.report import case_report, report_slice
    from test_scan import pdf_text

    result = predictor.predict_scan(scan_nifti(*scan_affine((1.0, 1.0, 3.0), "LPS", (-40.0, 89.0))))
    text = pdf_text(case_report(predictor, result, np.zeros((64, 64), np.float32), slice_index=report_slice(result)))
    z = [result.slice_z_mm[i] for i in result.slices_used]
    assert f"Used slices at MNI z {min(z):.0f} to {max(z):.0f} mm; the training slices lie at -3 to 23 mm" in text


def test_bench_scan_times_both_template_scans(predictor):
    from mrivision.bench.scan import bench_scan, format_scan_bench

    out = bench_scan(predictor, runs=1)
    assert list(out["scans"]) == ["1 mm, 189 slices", "3 mm, 44 slices"]
    for s in out["scans"].values():
        assert s["used"] >= 3 and TRAINED_MNI_Z_MM[0] <= s["z_min"] <= s["z_max"] <= TRAINED_MNI_Z_MM[1]
        assert s["predict_scan_s_p50"] > 0 and not s["out_of_distribution"]
    assert "189 slices: predicted in" in format_scan_bench("tiny", out)
