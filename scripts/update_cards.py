"""Add measured faithfulness (CAM methods vs RandomCAM), CPU bench numbers and the external cohort's
metrics (`--external MANIFEST`: `metrics.external`, bootstrap over subjects) to shipped cards.

The bench is `mrivision bench`'s (one fresh process per model); its table is printed at the end.

    python scripts/update_cards.py --test ../shared/data/alzheimer-4class/test [--models a,b] [--n 40]
        [--external ../shared/data/oasis2-external-val/manifest.csv] [--skip-bench] [--skip-faithfulness]

Faithfulness uses a fixed, class-stratified sample of test slices; only the card JSON changes
(its `weights_sha256` covers the .safetensors file, which is not touched).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from mrivision.bench.cli import bench_in_subprocess, format_table
from mrivision.model.card import ModelCard, resolve
from mrivision.evaluation.run import evaluate_model
from mrivision.inputs.datasets import load_dataset, read_sample
from mrivision.evaluation.faithfulness import measure_faithfulness, plain_sentence
from mrivision.inference.predictor import Predictor, list_models

METHODS = ("gradcam", "gradcam++", "hirescam", "eigencam", "random")


def sample_slices(test_dir: str, class_names: tuple[str, ...], n: int, seed: int = 0) -> list[np.ndarray]:
    samples = load_dataset(test_dir, class_names)
    rng = np.random.default_rng(seed)
    picked = []
    for label in sorted({s.label for s in samples}):
        idx = [i for i, s in enumerate(samples) if s.label == label]
        picked += list(rng.choice(idx, size=min(len(idx), max(1, n // len(class_names))), replace=False))
    return [read_sample(samples[i]) for i in sorted(picked)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--test", required=True)
    ap.add_argument("--models")
    ap.add_argument("--n", type=int, default=40, help="test slices for faithfulness")
    ap.add_argument("--runs", type=int, default=50, help="bench repetitions")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--skip-faithfulness", action="store_true")
    ap.add_argument("--external", help="the external cohort's manifest: evaluated into metrics.external")
    args = ap.parse_args()
    benched = []
    for name in args.models.split(",") if args.models else list_models():
        _, card_path = resolve(name)
        card = ModelCard.read(card_path)
        if not args.skip_faithfulness:
            predictor = Predictor.load(name)
            images = sample_slices(args.test, predictor.class_names, args.n)
            result = measure_faithfulness(predictor, images, METHODS)
            result["sentence"] = plain_sentence(result, "gradcam")
            result["data"] = f"{len(images)} test slices, class-stratified, seed 0"
            card = card.replace(faithfulness=result)
            print(name, result["sentence"], flush=True)
        if not args.skip_bench:
            result = bench_in_subprocess(name, args.runs, untrained=False)  # as `mrivision bench` does
            benched.append(result)
            if "error" in result:
                print(name, "bench failed:", result["error"], flush=True)
            else:
                card = card.replace(bench=result)
        if args.external:
            result = evaluate_model(Predictor.load(name), args.external)
            card = card.replace(metrics={**card.metrics, "external": result,
                                         "external_data": {"path": args.external, **result["data"]}})
            print(name, f"external balanced accuracy {result['scan']['balanced_accuracy']:.3f}", flush=True)
        card.write(card_path)
    if benched:
        print(format_table(benched))
    return 0


if __name__ == "__main__":
    sys.exit(main())
