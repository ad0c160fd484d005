"""Choose the CAM method and target layer of a model by the deletion check on training slices.

For every (method, layer) pair (and once for each gradient-free occlusion method, which has
neither a layer nor a score): heatmaps of the predicted class on a class-stratified sample of
`train/` slices (never `test/`), then `evaluation.deletion`: blurring the hottest 20% of the brain
against a smooth random 20% (ratio of the mean confidence drops). The best pair is confirmed on a
second, disjoint sample of training slices and written to the card's `cam` section (with
`--write`), which `Predictor.explain` uses by default.

    python scripts/select_cam.py --model neurostagenet_cv [--n 20] [--write]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from mrivision.evaluation.deletion import TOP_PERCENT, deletion_score, random_drops, top_drops
from mrivision.model.outputs import softmax
from mrivision.explain.cam import explain
from mrivision.explain import occlusion
from mrivision.inference.predictor import Predictor
from mrivision.inputs.datasets import load_dataset, read_sample
from mrivision.model.card import ModelCard, resolve

METHODS = ("gradcam", "hirescam", "layercam", "gradcam++", *occlusion.METHODS)
LAYERS = ("block5", "block6", "bn2", "head.block")  # shared prefix's last block; members' block, last conv, head


def sample(data: str, class_names: tuple[str, ...], n: int, seed: int, exclude: set[str]) -> list[tuple[str, np.ndarray]]:
    """`n` slices of `data`, as many per class as possible, none named in `exclude`."""
    samples = [s for s in load_dataset(data, class_names) if s.name not in exclude]
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for label in sorted({s.label for s in samples}):
        idx = [i for i, s in enumerate(samples) if s.label == label]
        picked += list(rng.choice(idx, size=min(len(idx), max(1, n // len(class_names))), replace=False))
    return [(samples[i].name, read_sample(samples[i])) for i in sorted(picked)]


def heatmaps(predictor: Predictor, images: list[np.ndarray], targets: np.ndarray, method: str, layer: str | None,
             score: str | None) -> list[np.ndarray]:
    if method in occlusion.METHODS:  # on the prediction backend (`explain.occlusion`)
        return [getattr(occlusion, method)(predictor, im, int(t)) for im, t in zip(images, targets)]
    with predictor.lock:
        return [explain(predictor.model, im, method=method, target=int(t), layer=layer, score=str(score))
                for im, t in zip(images, targets)]


def measure(predictor: Predictor, images: list[np.ndarray], method: str, layer: str | None, score: str | None,
            targets: np.ndarray, before: np.ndarray, rand: np.ndarray) -> dict[str, float | None]:
    heats = heatmaps(predictor, images, targets, method, layer, score)
    top = top_drops(predictor, images, heats, targets, before)
    ratio = float(top.mean() / rand.mean()) if rand.mean() > 0 else None
    return {"top_drop": float(top.mean()), "random_drop": float(rand.mean()), "ratio": ratio}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="neurostagenet_cv")
    ap.add_argument("--data", default="../shared/data/alzheimer-4class/train")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--layers", default=",".join(LAYERS))
    ap.add_argument("--scores", default="logit,probability", help="explain the class's logit and/or probability")
    ap.add_argument("--write", action="store_true", help="write the choice into the card's `cam` section")
    args = ap.parse_args()
    torch.set_num_threads(2)
    predictor = Predictor.load(args.model)  # its engine file predicts (occlusion); CAM loads torch
    chosen = sample(args.data, predictor.class_names, args.n, seed=0, exclude=set())
    images = [im for _, im in chosen]
    probs = softmax(predictor.logits(images))
    targets = probs.argmax(1)
    before = probs[np.arange(len(images)), targets]
    rand = random_drops(predictor, images, targets, before)
    print(f"{len(images)} training slices; blurring a smooth random {TOP_PERCENT}% of the brain costs "
          f"{rand.mean() * 100:.1f} points on average")
    rows = []
    for score in args.scores.split(","):
        for layer in args.layers.split(","):
            for method in args.methods.split(","):
                if method in occlusion.METHODS and any(r["method"] == method for r in rows):
                    continue  # no layer or score: measured once
                at, of = (None, None) if method in occlusion.METHODS else (layer, score)
                t0 = time.time()
                row = {"method": method, "layer": at, "score": of,
                       **measure(predictor, images, method, at, of, targets, before, rand)}
                rows.append(row)
                ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}"
                print(f"  {of or '-':11s} {at or '-':11s} {method:10s} top {row['top_drop'] * 100:5.1f} points  "
                      f"ratio {ratio:>5s}  ({time.time() - t0:.0f} s)", flush=True)
    best = max(rows, key=lambda r: r["ratio"] if r["ratio"] is not None else -np.inf)
    again = sample(args.data, predictor.class_names, args.n, seed=1, exclude={name for name, _ in chosen})
    images2 = [im for _, im in again]
    targets2 = predictor.logits(images2).argmax(1)
    heats2 = heatmaps(predictor, images2, targets2, best["method"], best["layer"], best["score"])
    confirm = deletion_score(predictor, images2, heats2, targets2, seed=1)
    where = "" if best["layer"] is None else f" at {best['layer']} on the {best['score']}"
    print(f"chosen: {best['method']}{where} (ratio {best['ratio']:.2f} on the selection slices); "
          f"on {len(images2)} other training slices: {confirm.sentence()}")
    if args.write:
        _, card_path = resolve(args.model)
        cam = {"method": best["method"], "layer": best["layer"], "score": best["score"], "ratio": best["ratio"],
               "top_drop": best["top_drop"], "random_drop": best["random_drop"],
               "confirmation": confirm.to_dict(),
               "selection": f"{len(images)} class-stratified train/ slices (seed 0) over methods "
                            f"{args.methods} x layers {args.layers} x scores {args.scores}; confirmation: {len(images2)} other "
                            f"train/ slices (seed 1); {TOP_PERCENT}% of the brain blurred, "
                            f"random = smooth blobs (scripts/select_cam.py)",
               "candidates": rows}
        ModelCard.read(card_path).replace(cam=cam).write(card_path)
        print("wrote the cam section of", card_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
