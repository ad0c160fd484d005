"""Measure the MNI z band the training slices come from (`placement.TRAINED_MNI_Z_MM`).

Each of N random training slices (all classes, fixed seed) and each axial slice of the MNI152
template (1 mm, z -50..+80 mm) is put in canonical framing (`mrivision.inputs.framing`); a training
slice's level is the template z whose framed slice correlates best with it (Pearson r on a blurred
half-size canvas, the template slice also mirrored left-right). Prints the 5th, 50th and 95th
percentiles of the matched z and the median best r.

    .venv/bin/python scripts/measure_mni_band.py [--n 600] [--data ../shared/data/alzheimer-4class/train]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from mrivision.anatomy.template import as_slices, template
from mrivision.inputs.framing import canonicalize
from mrivision.inputs.image import load_image

CANVAS = (208, 176)


def features(img: np.ndarray) -> np.ndarray:
    canvas, _ = canonicalize(img, CANVAS)
    small = cv2.GaussianBlur(cv2.resize(canvas, (CANVAS[1] // 2, CANVAS[0] // 2), interpolation=cv2.INTER_AREA),
                             (0, 0), 1.0).ravel()
    small = small - small.mean()
    return small / (np.linalg.norm(small) + 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/alzheimer-4class/train"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    files = sorted(Path(args.data).rglob("*.jpg"))
    if not files:
        raise SystemExit(f"no training slices under {args.data}")
    rng = np.random.default_rng(args.seed)
    chosen = [files[i] for i in rng.choice(len(files), size=min(args.n, len(files)), replace=False)]
    data, affine = template()
    slices = as_slices(data)
    z_all = affine[2, 3] + np.arange(len(slices))
    keep = (z_all >= -50) & (z_all <= 80)
    z = z_all[keep]
    ref = np.stack([features(s) for s in slices[keep]] + [features(s[:, ::-1]) for s in slices[keep]])
    train = np.stack([features(load_image(f)) for f in chosen])
    r = train @ ref.T  # (n, 2 * levels)
    best = r.argmax(axis=1) % len(z)
    matched = z[best]
    lo, mid, hi = np.percentile(matched, [5, 50, 95])
    print(f"{len(chosen)} training slices matched to {len(z)} template levels (z {z[0]:.0f}..{z[-1]:.0f} mm)")
    print(f"matched MNI z: 5th {lo:.1f} mm, median {mid:.1f} mm, 95th {hi:.1f} mm; "
          f"median best r {np.median(r.max(axis=1)):.3f}")
    hist, edges = np.histogram(matched, bins=np.arange(-50, 85, 5))
    print("histogram (5 mm bins): " + ", ".join(f"{e:.0f}:{h}" for e, h in zip(edges[:-1], hist) if h))
    print(f"TRAINED_MNI_Z_MM = ({lo:.0f}.0, {hi:.0f}.0)")


if __name__ == "__main__":
    main()
