"""Scan-level OOD (`ScanPrediction.out_of_distribution`): false alarms on T1 volumes and detections
on volumes unlike them, all made from the MNI152 template nilearn ships (no other volume data).

T1 (should pass): the template at 1 mm and at nilearn's 2 mm, re-stored (LPS, LAS, 3 mm and 5 mm
slices, float storage, 4-D with one volume), re-sliced (oblique), cropped (partial coverage that
keeps the band, a tight field of view), gamma 0.5..2, mild noise.
Not T1 (should be flagged): contrast-inverted, T2-like and FLAIR-like contrast, uniform noise, an
ellipsoid phantom, a scan that misses the trained band, a 2 cm slab.

    .venv/bin/python scripts/measure_scan_ood.py [--model default]
"""
from __future__ import annotations

import argparse
import time

import nibabel as nib
import numpy as np

from mrivision.anatomy.placement import place
from mrivision.anatomy.template import rotation, scan_affine, scan_nifti
from mrivision.inference.predictor import load_model
from mrivision.inference.scan import as_volume


def _t2_like(d: np.ndarray) -> np.ndarray:
    """Fluid bright, white matter darker than grey: the T1 order reversed inside the head."""
    return np.where(d > 0.03, 1.0 - 0.9 * d, 0.0)


def _flair_like(d: np.ndarray) -> np.ndarray:
    """Fluid dark, grey matter brighter than white (T1: white brighter than grey)."""
    return np.interp(d, [0.0, 0.03, 0.3, 0.55, 0.8, 1.0], [0.0, 0.1, 0.15, 0.8, 0.55, 0.5])


def _phantom(shape: tuple[int, ...]) -> np.ndarray:
    idx = np.indices(shape[:3]).astype(np.float32)
    c = (np.array(shape[:3]) - 1)[:, None, None, None] / 2
    r = ((idx - c) / (0.35 * np.array(shape[:3]))[:, None, None, None]) ** 2
    return (r.sum(axis=0) < 1).astype(np.float32) * 0.8


def _noisy(d: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return np.clip(d + np.random.default_rng(seed).normal(0, sigma, d.shape), 0, None)


def t1_cases() -> dict[str, bytes]:
    from nilearn.datasets import load_mni152_template  # the 2 mm version as nilearn itself resamples it

    two = load_mni152_template(resolution=2)
    iso3 = scan_affine((1.0, 1.0, 3.0), "LPS", (-40.0, 89.0))
    return {
        "template 1 mm RAS": scan_nifti(*scan_affine()),
        "template 2 mm (nilearn)": nib.Nifti1Image(np.asarray(two.dataobj, np.float32), two.affine).to_bytes(),
        "3 mm LPS from above the cerebellum": scan_nifti(*iso3),
        "1x1x3 mm LAS": scan_nifti(*scan_affine((1.0, 1.0, 3.0), "LAS")),
        "0.5x0.5x5 mm RAS": scan_nifti(*scan_affine((0.5, 0.5, 5.0), "RAS", fov_mm=(180.0, 220.0))),
        "oblique 15 deg (pitch)": scan_nifti(*scan_affine((1.0, 1.0, 2.0), rotate=rotation(15, 0, 0))),
        "oblique 12/8/10 deg": scan_nifti(*scan_affine((1.0, 1.0, 2.0), rotate=rotation(12, 8, 10))),
        "partial z -20..60": scan_nifti(*scan_affine((1.0, 1.0, 2.0), z_range=(-20.0, 60.0))),
        "partial z -6..100 (3 mm)": scan_nifti(*scan_affine((1.0, 1.0, 3.0), z_range=(-6.0, 100.0))),
        "partial z -60..28": scan_nifti(*scan_affine((1.0, 1.0, 2.0), z_range=(-60.0, 28.0))),
        "tight field of view": scan_nifti(*scan_affine((1.0, 1.0, 2.0), fov_mm=(150.0, 180.0))),
        "float32 storage": scan_nifti(*scan_affine((1.0, 1.0, 2.0)), dtype=np.float32),
        "4-D with one volume": scan_nifti(scan_affine((1.0, 1.0, 3.0))[0], (*scan_affine((1.0, 1.0, 3.0))[1], 1)),
        "gamma 0.5": scan_nifti(*iso3, intensity=lambda d: d ** 0.5),
        "gamma 0.75": scan_nifti(*iso3, intensity=lambda d: d ** 0.75),
        "gamma 1.5": scan_nifti(*iso3, intensity=lambda d: d ** 1.5),
        "gamma 2": scan_nifti(*iso3, intensity=lambda d: d ** 2.0),
        "noise sigma 0.03": scan_nifti(*iso3, intensity=lambda d: _noisy(d, 0.03)),
    }


def other_cases() -> dict[str, bytes]:
    iso3 = scan_affine((1.0, 1.0, 3.0), "LPS", (-40.0, 89.0))
    return {
        "contrast-inverted": scan_nifti(*iso3, intensity=lambda d: np.where(d > 0.03, 1.0 - d, 0.0)),
        "T2-like": scan_nifti(*iso3, intensity=_t2_like),
        "FLAIR-like": scan_nifti(*iso3, intensity=_flair_like),
        "uniform noise": scan_nifti(*iso3, intensity=lambda d: np.random.default_rng(1).random(d.shape)),
        "ellipsoid phantom": scan_nifti(*iso3, intensity=lambda d: _phantom(d.shape)),
        "misses the band (z 40..110)": scan_nifti(*scan_affine((1.0, 1.0, 3.0), z_range=(40.0, 110.0))),
        "misses the band (z -70..-15)": scan_nifti(*scan_affine((1.0, 1.0, 3.0), z_range=(-70.0, -15.0))),
        "2 cm slab (z 20..40)": scan_nifti(*scan_affine((1.0, 1.0, 2.0), z_range=(20.0, 40.0))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    predictor = load_model(args.model)
    print(f"model {predictor.name}")
    counts = {}
    for group, cases, want in (("T1 (false alarm if flagged)", t1_cases(), False),
                               ("not T1 (detected if flagged)", other_cases(), True)):
        print(f"\n{group}")
        hits = 0
        for name, data in cases.items():
            volume = as_volume(data)
            start = time.perf_counter()
            r = predictor.predict_scan(volume)
            seconds = time.perf_counter() - start
            placed = place(volume)
            z = [r.slice_z_mm[i] for i in r.slices_used] if r.slice_z_mm else []
            where = f"z {min(z):5.1f}..{max(z):5.1f}" if z else "not placed"
            why = "; ".join(w.split(";")[0].split(".")[0][:40] for w in r.warnings if "uncertain" not in w)
            hits += r.out_of_distribution == want
            mark = "ok  " if r.out_of_distribution == want else "MISS"
            print(f"  {mark} {name:34s} ood={r.out_of_distribution!s:5s} "
                  f"used {len(r.slices_used):2d}/{r.n_slices:3d} {where:16s} overlap {placed.overlap:.2f} "
                  f"T1-rank r {placed.t1_similarity:+.2f} {seconds:5.2f}s {why}")
        counts[group] = (hits, len(cases))
    (t1_ok, t1_n), (det, n) = counts.values()
    print(f"\nfalse alarms: {t1_n - t1_ok} of {t1_n} T1 volumes; detections: {det} of {n} non-T1 volumes")


if __name__ == "__main__":
    main()
