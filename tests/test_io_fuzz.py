"""Fuzz mrivision.inputs.image: whatever the bytes, only ImageLoadError escapes, and quickly."""
from __future__ import annotations

import gzip
import io
import time

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset

from mrivision.errors import ImageLoadError
from mrivision.inputs.image import describe_image, load_image

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # libraries warn about damaged files

TIME_LIMIT_S = 2.0
NAMES = [None, "scan.png", "scan.jpg", "scan.tif", "scan.dcm", "scan.nii", "scan.nii.gz"]
MAGIC_PREFIXES = [
    b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*", b"GIF89a", b"BM",
    b"RIFF\x00\x00\x00\x00WEBP", b"\0" * 128 + b"DICM", b"\x1f\x8b\x08\x00",
]


def _picture(fmt: str) -> bytes:
    arr = (np.arange(24 * 20, dtype=np.uint16).reshape(24, 20) % 251).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def _dicom() -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dicom_uid.MRImageStorage
    meta.MediaStorageSOPInstanceUID = dicom_uid.generate_uid()
    meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
    ds = FileDataset("scan.dcm", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "MR"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 20, 18, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.WindowCenter, ds.WindowWidth = 2, -5, 200, 300
    ds.PixelData = (np.arange(20 * 18, dtype=np.uint16) * 11).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _nifti(gz: bool) -> bytes:
    vol = np.arange(18 * 20 * 3, dtype=np.int16).reshape(18, 20, 3)
    data = nib.Nifti1Image(vol, np.eye(4)).to_bytes()
    return gzip.compress(data) if gz else data


SEEDS = [_picture("PNG"), _picture("JPEG"), _picture("TIFF"), _picture("GIF"), _dicom(), _nifti(False), _nifti(True)]

_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**20), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 2**20), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 2**20), st.integers(1, 64)),
    st.tuples(st.just("truncate"), st.integers(0, 2**20), st.just(0)),
    st.tuples(st.just("set"), st.integers(0, 2**20), st.sampled_from([0, 1, 0x7F, 0x80, 0xFF])),
)


def _mutate(data: bytes, mutations: list[tuple]) -> bytes:
    buf = bytearray(data)
    for kind, where, arg in mutations:
        pos = where % (len(buf) + 1)
        if kind == "flip" and pos < len(buf):
            buf[pos] ^= arg
        elif kind == "set" and pos < len(buf):
            buf[pos] = arg
        elif kind == "insert":
            buf[pos:pos] = arg
        elif kind == "delete":
            del buf[pos : pos + arg]
        elif kind == "truncate":
            del buf[pos:]
    return bytes(buf)


def _assert_only_image_load_error(data: bytes) -> None:
    """Call the loaders with and without each kind of name hint."""
    for name in (None, *NAMES[1:]):
        for call in (lambda: load_image(data, name=name), lambda: describe_image(data, name)):
            start = time.perf_counter()
            try:
                result = call()
            except ImageLoadError as exc:
                assert str(exc).strip()
            else:
                if isinstance(result, np.ndarray):
                    assert result.dtype == np.float32 and result.ndim == 2
                    assert np.isfinite(result).all() and 0.0 <= result.min() <= result.max() <= 1.0
            elapsed = time.perf_counter() - start
            assert elapsed < TIME_LIMIT_S, f"took {elapsed:.2f} s with name={name!r}"


FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(prefix=st.sampled_from(MAGIC_PREFIXES), body=st.binary(max_size=1024))
def test_random_bytes(prefix: bytes, body: bytes) -> None:
    _assert_only_image_load_error(prefix + body)


@FUZZ
@given(seed=st.sampled_from(SEEDS), mutations=st.lists(_mutation, min_size=1, max_size=6))
def test_mutated_valid_files(seed: bytes, mutations: list[tuple]) -> None:
    _assert_only_image_load_error(_mutate(seed, mutations))


def test_seeds_load() -> None:
    for seed in SEEDS:
        out = load_image(seed)
        assert out.dtype == np.float32 and out.ndim == 2
