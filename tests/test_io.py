"""Tests for mrivision.inputs.image: every input is generated here, in memory or under tmp_path."""
from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Callable

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder

import mrivision.inputs.image as mio
from mrivision.errors import ImageLoadError
from mrivision.inputs.image import ImageInfo, describe_image, load_image

RNG = np.random.default_rng(0)


# --- builders ----------------------------------------------------------------------------------


def picture(arr: np.ndarray | Image.Image, fmt: str = "PNG", mode: str | None = None, **save: object) -> bytes:
    """Encode an array (or image) with Pillow, converting to ``mode`` first if given."""
    im = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    if mode is not None:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


def gradient(h: int = 32, w: int = 40) -> np.ndarray:
    return ((np.arange(h * w) * 7) % 256).astype(np.uint8).reshape(h, w)


def color(h: int = 32, w: int = 40) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def dicom(
    pixels: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = dicom_uid.ExplicitVRLittleEndian,
    pixel_data: bytes | None = None,
    file_format: bool = True,
    **elements: object,
) -> bytes:
    """A minimal MR image; ``pixels`` is (H, W), (frames, H, W) or (H, W, 3); None: no pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dicom_uid.MRImageStorage
    meta.MediaStorageSOPInstanceUID = dicom_uid.generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset("scan.dcm", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientName = "Test^Patient"
    shape = (20, 24) if pixels is None else pixels.shape
    rgb = photometric == "RGB"
    if len(shape) == 3 and not rgb:
        ds.NumberOfFrames = shape[0]
        shape = shape[1:]
    ds.Rows, ds.Columns = shape[:2]
    ds.SamplesPerPixel = 3 if rgb else 1
    if rgb:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    bits = 8 if pixels is not None and pixels.dtype == np.uint8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if pixel_data is not None:
        ds.PixelData = pixel_data
        ds["PixelData"].VR = "OB"
    elif pixels is not None:
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    buf = io.BytesIO()
    if file_format:
        ds.save_as(buf, enforce_file_format=True)
    else:  # a bare dataset: no preamble, no "DICM", no file meta
        bare = Dataset()
        bare.update({elem.tag: elem for elem in ds})
        bare.save_as(buf, implicit_vr=True, little_endian=True)
    return buf.getvalue()


def nifti(arr: np.ndarray, *, gz: bool = False, affine: np.ndarray | None = None) -> bytes:
    data = nib.Nifti1Image(arr, np.eye(4) if affine is None else affine).to_bytes()
    return gzip.compress(data) if gz else data


def minmax(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float64)
    return ((arr - arr.min()) / (arr.max() - arr.min())).astype(np.float32)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height 8-bit gray pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def noise_picture(fmt: str) -> bytes:
    return picture(RNG.integers(0, 256, (96, 96), dtype=np.uint8), fmt)


def check_slice(out: np.ndarray, shape: tuple[int, int] | None = None) -> None:
    assert out.dtype == np.float32 and out.ndim == 2
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    if shape is not None:
        assert out.shape == shape


# (id, what a user would call it, bytes or a zero-argument factory, expected words in the message)
BAD_INPUT_CASES: list[tuple[str, str, bytes | Callable[[], bytes], str]] = [
    ("empty", "An empty file (0 bytes)", b"", "empty"),
    ("text", "A text file renamed to .png", b"Patient notes: follow-up in 6 months.\n" * 4, "not an image"),
    ("pdf", "A PDF document", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "not an image"),
    ("random", "Random binary data", bytes(RNG.integers(0, 256, 600, dtype=np.uint8)), "not an image"),
    ("truncated-png", "A PNG picture cut off halfway", lambda: noise_picture("PNG")[: len(noise_picture("PNG")) // 2], "damaged"),
    ("truncated-jpeg", "A JPEG photo cut off halfway", lambda: noise_picture("JPEG")[: len(noise_picture("JPEG")) // 2], "damaged"),
    ("bomb", "A PNG claiming to be 100,000 x 100,000 pixels (decompression bomb)", lambda: png_declaring(100_000, 100_000), "too large"),
    ("huge-dimensions", "A PNG claiming 7,000 x 7,000 pixels", lambda: png_declaring(7_000, 7_000), "too large"),
    ("oversize", "A file larger than 50 MB", lambda: b"\0" * (mio.MAX_FILE_BYTES + 1), "too large"),
    ("one-pixel-row", "A picture 1 pixel high", lambda: picture(np.zeros((1, 300), np.uint8)), "too small"),
    ("tiny", "An 8 x 8 pixel icon", lambda: picture(np.zeros((8, 8), np.uint8)), "too small"),
    ("dicom-no-pixels", "A DICOM file without an image (for example a report)", lambda: dicom(None), "no image data"),
    ("dicom-truncated", "A DICOM scan cut off halfway", lambda: dicom(gradient().astype(np.uint16))[:900], "damaged"),
    ("nifti-4d", "A 4-D NIfTI series (fMRI or diffusion)", lambda: nifti(np.zeros((20, 20, 4, 3), np.float32)), "4-D"),
    ("nifti-header-only", "A NIfTI .hdr header without its .img", lambda: nib.Nifti1Pair(np.zeros((20, 20, 4), np.float32), np.eye(4)).header.binaryblock, "without its image"),
    ("nifti-truncated", "A compressed NIfTI volume cut off halfway", lambda: nifti(RNG.random((24, 24, 12), dtype=np.float32), gz=True)[:2000], "damaged"),
]


def case_bytes(factory: bytes | Callable[[], bytes]) -> bytes:
    return factory() if callable(factory) else factory


# --- pictures ----------------------------------------------------------------------------------


def test_gray8_png_exact_round_trip() -> None:
    arr = gradient()
    out = load_image(picture(arr))
    check_slice(out, arr.shape)
    np.testing.assert_array_equal(out, arr.astype(np.float32) / 255)


def test_gray16_png_min_max_scaled() -> None:
    arr = (np.arange(32 * 40, dtype=np.uint16).reshape(32, 40) * 37 + 1000).astype(np.uint16)
    data = picture(arr)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = load_image(data)
    check_slice(out, arr.shape)
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out, minmax(arr), atol=1e-6)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("RGB", "JPEG"), ("RGB", "PNG"), ("RGBA", "PNG"), ("RGBA", "TIFF"), ("P", "PNG"), ("P", "GIF"),
     ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("LA", "PNG"), ("1", "BMP"), ("RGB", "WEBP"), ("L", "BMP"),
     ("I;16", "TIFF")],
)
def test_colour_and_palette_become_gray(mode: str, fmt: str) -> None:
    src = Image.fromarray(color()).convert(mode) if mode != "I;16" else Image.fromarray(gradient().astype(np.uint16) * 200)
    out = load_image(picture(src, fmt))
    check_slice(out, (32, 40))


def test_rgb_png_is_luminance_over_255() -> None:
    rgb = color()
    out = load_image(picture(rgb))
    expected = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    np.testing.assert_array_equal(out, expected)


def test_rgba_alpha_is_dropped() -> None:
    rgb = color()
    rgba = np.dstack([rgb, RNG.integers(0, 256, rgb.shape[:2], dtype=np.uint8)])
    np.testing.assert_array_equal(load_image(picture(rgba)), load_image(picture(rgb)))


def test_float_tiff_min_max_with_nan_and_inf() -> None:
    arr = np.linspace(-3.0, 7.0, 32 * 40, dtype=np.float32).reshape(32, 40)
    arr[0, 0], arr[0, 1], arr[0, 2] = np.nan, np.inf, -np.inf
    out = load_image(picture(arr, "TIFF"))
    check_slice(out, arr.shape)
    assert out[0, 0] == 0.0 and out[0, 1] == 1.0 and out[0, 2] == 0.0
    lo, hi = np.nanmin(arr[np.isfinite(arr)]), np.nanmax(arr[np.isfinite(arr)])
    np.testing.assert_allclose(out, minmax(np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)), atol=1e-6)


def test_constant_16bit_gives_zeros_and_constant_8bit_stays_x_over_255() -> None:
    np.testing.assert_array_equal(load_image(picture(np.full((20, 20), 999, np.uint16))), np.zeros((20, 20)))
    np.testing.assert_array_equal(load_image(picture(np.full((20, 20), 51, np.uint8))), np.full((20, 20), 0.2, np.float32))


def test_animated_gif_and_multipage_tiff_give_first_frame() -> None:
    first, second = gradient(), gradient()[::-1].copy()
    frames = [Image.fromarray(first), Image.fromarray(second)]
    for fmt in ("GIF", "TIFF"):
        buf = io.BytesIO()
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:])
        assert getattr(Image.open(io.BytesIO(buf.getvalue())), "n_frames", 1) == 2
        np.testing.assert_array_equal(load_image(buf.getvalue()), first.astype(np.float32) / 255)
        assert describe_image(buf.getvalue()) == ImageInfo("raster", first.shape, 1, 0)


def test_describe_raster() -> None:
    assert describe_image(picture(gradient(50, 70)), "x.png") == ImageInfo("raster", (50, 70), 1, 0)


def test_slice_index_on_2d_image() -> None:
    data = picture(gradient())
    assert load_image(data, slice_index=0).shape == (32, 40)
    assert load_image(data, axis=1).shape == (32, 40)  # axis is ignored for 2-D inputs
    with pytest.raises(ImageLoadError, match="only one slice"):
        load_image(data, slice_index=1)


# --- DICOM -------------------------------------------------------------------------------------

PIXELS16 = (np.arange(24 * 20, dtype=np.uint16).reshape(24, 20) * 9)


def test_dicom_rescale_applied() -> None:
    out = load_image(dicom(PIXELS16, RescaleSlope=-2, RescaleIntercept=100))
    check_slice(out, PIXELS16.shape)
    np.testing.assert_allclose(out, 1.0 - minmax(PIXELS16), atol=1e-6)


def test_dicom_monochrome1_is_inverse_of_monochrome2() -> None:
    mono2 = load_image(dicom(PIXELS16))
    mono1 = load_image(dicom(PIXELS16, photometric="MONOCHROME1"))
    np.testing.assert_allclose(mono2, minmax(PIXELS16), atol=1e-6)
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 'LINEAR', scaled to [0, 1]."""
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1)


@pytest.mark.parametrize("multi", [False, True])
def test_dicom_window_applied_in_rescaled_units(multi: bool) -> None:
    center, width = (1000, [400, 1]) if multi else (1000, 400)
    out = load_image(dicom(PIXELS16, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=[center, 5] if multi else center, WindowWidth=width))
    check_slice(out, PIXELS16.shape)
    expected = linear_window(PIXELS16 * 2.0 - 100, 1000, 400)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert (out == 0).any() and (out == 1).any() and ((out > 0) & (out < 1)).any()


def test_dicom_window_with_monochrome1_inverts() -> None:
    mono2 = load_image(dicom(PIXELS16, WindowCenter=1000, WindowWidth=800))
    mono1 = load_image(dicom(PIXELS16, photometric="MONOCHROME1", WindowCenter=1000, WindowWidth=800))
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)


def test_dicom_multiframe_picks_a_slice() -> None:
    frames = np.stack([PIXELS16 * 0 + k for k in (1, 2, 3)]) + np.arange(20, dtype=np.uint16) * np.array([1, 2, 3], np.uint16)[:, None, None]
    data = dicom(frames.astype(np.uint16))
    assert describe_image(data) == ImageInfo("dicom", (3, 24, 20), 3, 0)
    np.testing.assert_allclose(load_image(data), minmax(frames[1]), atol=1e-6)
    np.testing.assert_allclose(load_image(data, slice_index=2), minmax(frames[2]), atol=1e-6)
    with pytest.raises(ImageLoadError, match="0 to 2"):
        load_image(data, slice_index=3)
    for call in (lambda: load_image(data, axis=2), lambda: describe_image(data, axis=2)):
        with pytest.raises(ImageLoadError, match="axis 0"):
            call()


def test_dicom_enhanced_functional_groups() -> None:
    frames = np.stack([PIXELS16, PIXELS16, PIXELS16])
    per_frame = []
    for slope in (1, -1, 1):
        item, transform = Dataset(), Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = slope, 0
        item.PixelValueTransformationSequence = [transform]
        per_frame.append(item)
    shared, voi = Dataset(), Dataset()
    voi.WindowCenter, voi.WindowWidth = 1000, 400
    shared.FrameVOILUTSequence = [voi]
    data = dicom(frames, PerFrameFunctionalGroupsSequence=per_frame)
    np.testing.assert_allclose(load_image(data, slice_index=1), 1.0 - minmax(PIXELS16), atol=1e-6)
    np.testing.assert_allclose(load_image(data, slice_index=0), minmax(PIXELS16), atol=1e-6)
    windowed = dicom(frames, SharedFunctionalGroupsSequence=[shared], WindowCenter=5, WindowWidth=2)
    np.testing.assert_allclose(load_image(windowed), linear_window(PIXELS16.astype(float), 1000, 400), atol=1e-6)


def test_dicom_rgb_becomes_luminance() -> None:
    rgb = color(24, 20)
    out = load_image(dicom(rgb, photometric="RGB"))
    check_slice(out, (24, 20))
    np.testing.assert_allclose(out, minmax(rgb @ np.array([0.299, 0.587, 0.114])), atol=1e-6)


def test_dicom_constant_gives_zeros() -> None:
    np.testing.assert_array_equal(load_image(dicom(np.full((20, 20), 7, np.uint16))), np.zeros((20, 20)))


def test_dicom_without_preamble_found_by_name() -> None:
    data = dicom(PIXELS16, file_format=False)
    assert data[128:132] != b"DICM"
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(data)
    np.testing.assert_allclose(load_image(data, name="IM0001.dcm"), minmax(PIXELS16), atol=1e-6)


def test_dicom_compressed_with_bogus_data_raises() -> None:
    data = dicom(PIXELS16, transfer_syntax=dicom_uid.JPEG2000Lossless, pixel_data=encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 60]))
    with pytest.raises(ImageLoadError) as info:
        load_image(data)
    assert str(info.value)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom guesses the VR of an unknown syntax
def test_dicom_compression_without_decoder_is_explained() -> None:
    candidates = (dicom_uid.JPEGLosslessSV1, dicom_uid.JPEGLSLossless, dicom_uid.HTJ2KLossless, dicom_uid.JPEGLossless)
    missing = [ts for ts in candidates if not get_decoder(ts).is_available]
    if not missing:
        pytest.skip("every candidate compression has a decoder installed here")
    data = dicom(PIXELS16, transfer_syntax=missing[0], pixel_data=encapsulate([b"\0" * 64]))
    for call in (load_image, describe_image):
        with pytest.raises(ImageLoadError, match="does not support") as info:
            call(data)
        assert "uncompressed DICOM or as PNG" in str(info.value)
    unknown = dicom(PIXELS16, transfer_syntax="1.2.3.4.5", pixel_data=encapsulate([b"\0" * 64]))
    with pytest.raises(ImageLoadError, match="unknown or damaged encoding"):
        load_image(unknown)


# --- NIfTI -------------------------------------------------------------------------------------

VOLUME = RNG.random((20, 24, 30), dtype=np.float32)


@pytest.mark.parametrize("gz", [False, True])
def test_nifti_2d(gz: bool) -> None:
    arr = RNG.random((20, 24), dtype=np.float32)
    data = nifti(arr, gz=gz)
    np.testing.assert_allclose(load_image(data), minmax(np.rot90(arr)), atol=1e-6)
    assert describe_image(data) == ImageInfo("nifti", (20, 24, 1), 1, 2)


@pytest.mark.parametrize("gz", [False, True])
def test_nifti_3d_default_middle_axial(gz: bool) -> None:
    data = nifti(VOLUME, gz=gz)
    out = load_image(data)
    check_slice(out, (24, 20))
    np.testing.assert_allclose(out, minmax(np.rot90(VOLUME[:, :, 15])), atol=1e-6)
    assert describe_image(data) == ImageInfo("nifti", (20, 24, 30), 30, 2)


@pytest.mark.parametrize(("axis", "index"), [(0, 3), (1, 0), (2, 29), (-1, 4)])
def test_nifti_chosen_axis_and_index(axis: int, index: int) -> None:
    out = load_image(nifti(VOLUME, gz=True), axis=axis, slice_index=index)
    np.testing.assert_allclose(out, minmax(np.rot90(np.take(VOLUME, index, axis=axis))), atol=1e-6)
    assert describe_image(nifti(VOLUME), axis=axis).n_slices == VOLUME.shape[axis]


def test_nifti_index_out_of_range_names_valid_range() -> None:
    with pytest.raises(ImageLoadError, match="0 to 29"):
        load_image(nifti(VOLUME), slice_index=30)
    with pytest.raises(ImageLoadError, match="0 to 19"):
        load_image(nifti(VOLUME), slice_index=-1, axis=0)
    with pytest.raises(ImageLoadError, match="axis"):
        load_image(nifti(VOLUME), axis=3)


def test_nifti_single_slice_volume_uses_singleton_axis() -> None:
    arr = RNG.random((20, 1, 24), dtype=np.float32)
    data = nifti(arr)
    assert describe_image(data) == ImageInfo("nifti", (20, 1, 24), 1, 1)
    np.testing.assert_allclose(load_image(data), minmax(np.rot90(arr[:, 0, :])), atol=1e-6)


def test_nifti_reoriented_to_ras() -> None:
    las = nifti(VOLUME[::-1].copy(), affine=np.diag([-1.0, 1.0, 1.0, 1.0]))
    np.testing.assert_allclose(load_image(las), load_image(nifti(VOLUME)), atol=1e-6)


def test_nifti_4d() -> None:
    with pytest.raises(ImageLoadError, match="4-D"):
        load_image(nifti(np.zeros((20, 20, 5, 2), np.float32)))
    out = load_image(nifti(VOLUME[..., None]))
    np.testing.assert_allclose(out, load_image(nifti(VOLUME)), atol=1e-6)


def test_nifti_nan_and_inf() -> None:
    vol = VOLUME.copy()
    vol[0, 0, 15], vol[1, 0, 15], vol[2, 0, 15] = np.nan, np.inf, -np.inf
    vol[:, :, 3] = np.nan
    out = load_image(nifti(vol))
    check_slice(out)
    flat = np.rot90(vol[:, :, 15])
    assert out[np.isnan(flat)] == 0.0 and out[np.isposinf(flat)] == 1.0 and out[np.isneginf(flat)] == 0.0
    with pytest.raises(ImageLoadError, match="no valid numbers"):
        load_image(nifti(vol), slice_index=3)


def test_nifti_integer_and_constant() -> None:
    ints = (VOLUME * 1000).astype(np.int16)
    np.testing.assert_allclose(load_image(nifti(ints)), minmax(np.rot90(ints[:, :, 15])), atol=1e-6)
    np.testing.assert_array_equal(load_image(nifti(np.ones((20, 20, 3), np.float32))), np.zeros((20, 20)))


# --- sources -----------------------------------------------------------------------------------

SAMPLES = {
    "scan.png": lambda: picture(gradient()),
    "scan.tif": lambda: picture(gradient().astype(np.uint16) * 100, "TIFF"),
    "scan.dcm": lambda: dicom(PIXELS16, RescaleSlope=3),
    "scan.nii": lambda: nifti(VOLUME),
    "scan.nii.gz": lambda: nifti(VOLUME, gz=True),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_bytes_and_path_give_the_same_array(name: str, tmp_path) -> None:
    data = SAMPLES[name]()
    path = tmp_path / name
    path.write_bytes(data)
    from_bytes = load_image(data, name=name)
    np.testing.assert_array_equal(from_bytes, load_image(path))
    np.testing.assert_array_equal(from_bytes, load_image(str(path)))
    np.testing.assert_array_equal(from_bytes, load_image(data))  # found by content alone
    assert describe_image(path) == describe_image(data, name)


@pytest.mark.parametrize("name", ["scan ünï 'x' (1).png", 'a "quoted" name.nii.gz', "séance #2 & co.dcm"])
def test_odd_file_names(name: str, tmp_path) -> None:
    suffix = ".png" if name.endswith(".png") else ".nii.gz" if name.endswith(".gz") else ".dcm"
    path = tmp_path / "dir with spaces ü" / name
    path.parent.mkdir()
    path.write_bytes(SAMPLES["scan" + suffix]())
    check_slice(load_image(path))
    check_slice(load_image(str(path)))


def test_nonexistent_path_and_folder(tmp_path) -> None:
    with pytest.raises(ImageLoadError, match="could not find"):
        load_image(tmp_path / "missing scan.png")
    with pytest.raises(ImageLoadError, match="folder"):
        describe_image(tmp_path)


def test_not_a_source() -> None:
    with pytest.raises(ImageLoadError):
        load_image(12345)  # type: ignore[arg-type]


def test_oversize_limit_is_read_at_call_time(monkeypatch, tmp_path) -> None:
    data = picture(gradient())
    path = tmp_path / "scan.png"
    path.write_bytes(data)
    monkeypatch.setattr(mio, "MAX_FILE_BYTES", len(data) - 1)
    for src in (data, path):
        with pytest.raises(ImageLoadError, match="too large"):
            load_image(src)


@pytest.mark.parametrize("name", [None, "upload.png"])
@pytest.mark.parametrize(("case_id", "description", "factory", "expected"), BAD_INPUT_CASES, ids=[c[0] for c in BAD_INPUT_CASES])
def test_bad_inputs(case_id: str, description: str, factory, expected: str, name: str | None) -> None:
    data = case_bytes(factory)
    with pytest.raises(ImageLoadError) as info:
        load_image(data, name=name)
    message = str(info.value)
    assert message.strip() and description
    assert expected.lower() in message.lower(), message
    assert type(info.value) is ImageLoadError
