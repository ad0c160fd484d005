"""Measure a model's out-of-distribution detector and (optionally) store the numbers on its card.

    python scripts/measure_ood.py --model NAME_OR_PATH [--data TEST_DIR] [--n 50] [--seed 0] [--write-card]
    python scripts/measure_ood.py --model NAME_OR_PATH --refit-train TRAIN_DIR [--data TEST_DIR] --write-card

Fits nothing by default: it uses the detector stored in the card (``card["ood"]``, fitted on the
training slices during training). It reports the false-alarm rate on the real test slices (the
share of them flagged) and the detection rate on generated non-MRI images of every family in
`mrivision.evaluation.ood_probes` (n per family, seeded; "inverted_mri" inverts the test slices).

--refit-train DIR refits the detector on the slices under DIR first (for models trained before
the detector changed); the old measurement is dropped and the new one taken.
--write-card stores the detector (if refitted) and ``ood["measured"]`` in the card JSON. Only the
card changes: its ``weights_sha256`` hashes the .safetensors file, so it stays valid.
Test slices are only read, never copied.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mrivision.inputs.datasets import load_dataset, read_sample
from mrivision.errors import ImageLoadError, ModelLoadError
from mrivision.inference.ood import fit_ood
from mrivision.evaluation.ood_probes import measure
from mrivision.model.card import ModelCard, resolve, thaw
from mrivision.inputs.transforms import frame


def read_slices(path: str, class_names: list[str]) -> list[np.ndarray]:
    images = []
    for sample in load_dataset(path, class_names):
        try:
            images.append(read_sample(sample))
        except ImageLoadError as exc:
            print(f"skipping {sample.name}: {exc}", file=sys.stderr)
    return images


def table(measured: dict, threshold: float) -> str:
    lines = ["| images | n | flagged as not like the training slices | closest distance / threshold |",
             "|---|---:|---:|---:|",
             f"| real test slices (false alarms) | {measured['n_test']} | {measured['false_alarm_rate']:.1%} | "
             f"p99 {measured['test_distance_over_threshold_p99']} |"]
    for family, rate in measured["detection_rate"].items():
        lines.append(f"| generated: {family.replace('_', ' ')} | {measured['n_per_family']} | {rate:.1%} | "
                     f"{measured['min_distance_over_threshold'][family]} |")
    return "\n".join(lines) + f"\n\nthreshold (Mahalanobis distance): {threshold:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="shipped model name, or a .safetensors / .json path")
    ap.add_argument("--data", help="test slices (class-folder tree, .parquet or .csv); default: the card's test data")
    ap.add_argument("--refit-train", metavar="DIR", help="refit the detector on the training slices in DIR first")
    ap.add_argument("--n", type=int, default=50, help="generated images per family (default 50)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-card", action="store_true", help="store the result in the card JSON")
    args = ap.parse_args(argv)
    try:
        _, card_path = resolve(args.model)
        card = ModelCard.read(card_path)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = card.spec
    ood = thaw(card.ood) if card.ood else None
    if args.refit_train:
        started = time.time()
        slices = read_slices(args.refit_train, card.class_names)
        if spec.framing == "canonical":
            slices = [frame(im, spec)[0] for im in slices]
        ood = {**fit_ood(slices, framing=spec.framing), "fitted_on": str(args.refit_train)}
        print(f"refitted the detector on {ood['n_fit']} slices from {args.refit_train} "
              f"in {time.time() - started:.0f} s")
    if not ood:
        print(f"error: {card_path.name} has no detector (card['ood']); use --refit-train DIR", file=sys.stderr)
        return 2
    data = args.data or (card.metrics_for("test_data") or {}).get("path")
    if not data or not Path(data).exists():
        print("error: no test data: pass --data TEST_DIR", file=sys.stderr)
        return 2
    started = time.time()
    measured = measure(ood, read_slices(data, card.class_names), n=args.n, seed=args.seed, spec=spec)
    measured["data"] = str(data)
    ood["measured"] = measured
    print(f"{card.name}: out-of-distribution detector ({time.time() - started:.0f} s)\n")
    print(table(measured, float(ood["threshold"])))
    if args.write_card:
        card.replace(ood=ood).write(card_path)
        print(f"\nwrote card['ood'] to {card_path}")
    else:
        print("\n(not written; add --write-card to store it in the card)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
