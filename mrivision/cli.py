"""`mrivision train|cv|evaluate|predict|report|explain|bench|export|models` — the command-line front door."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fetch weights at run time

FAST_PATH_MIN_FILES = 8  # building the fast engine in memory pays off only over several images


def _cmd_train(args: argparse.Namespace) -> int:
    from mrivision.training.train import train

    cfg = _config(args)
    card = train(cfg, resume=args.resume)
    print(f"wrote {Path(cfg.out_dir) / (card['name'] + '.safetensors')} and its card")
    return 0


def _config(args: argparse.Namespace):
    from mrivision.training.train import TrainConfig

    cfg = TrainConfig.from_yaml(args.config)
    for key in ("epochs", "data", "test_data", "out_dir", "run_dir", "limit", "threads", "folds"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    if getattr(args, "label_names", None):
        cfg.label_names = args.label_names.split(",")
    return cfg


def _cmd_cv(args: argparse.Namespace) -> int:
    from mrivision.training.crossval import cross_validate, ship_ensemble

    cfg = _config(args)
    summary = cross_validate(cfg, resume=args.resume)
    if args.ship:
        card = ship_ensemble(cfg, summary)
        print(f"wrote {Path(cfg.out_dir) / (card['name'] + '.safetensors')} (the {cfg.folds} fold models) and its card")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mrivision.evaluation.metrics import format_report
    from mrivision.evaluation.run import evaluate_model
    from mrivision.inference.predictor import load_model

    predictor = load_model(args.model)
    label_names = args.label_names.split(",") if args.label_names else None
    result = evaluate_model(predictor, args.data, out_csv=args.out, label_names=label_names, n_boot=args.n_boot)
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"metrics written to {args.json}")
    return 0


def _is_volume(file: str) -> bool:
    """A zip, or a file holding more than one slice."""
    from mrivision.inputs.image import describe_image

    if file.lower().endswith(".zip"):
        return True
    try:
        return describe_image(file).n_slices > 1
    except ValueError:
        return False


def _print_prediction(label: str, p) -> None:
    probs = "  ".join(f"{c} {v:.3f}" for c, v in p.probabilities.items())
    print(f"{label}: {p.label} ({max(p.probabilities.values()):.1%})  [{probs}]  "
          f"expected stage {p.expected_stage:.2f} +- {p.stage_spread:.2f}")
    for w in p.warnings:
        print(f"  warning: {w}")


def _cmd_predict(args: argparse.Namespace) -> int:
    from mrivision.errors import ImageLoadError
    from mrivision.inputs.image import load_image
    from mrivision.inference.predictor import load_model
    from mrivision.inputs.volume import load_volume

    predictor = load_model(args.model, build=len(args.files) > FAST_PATH_MIN_FILES)
    failed = 0
    groups = [args.files] if args.series else [[f] for f in args.files]
    for files in groups:
        label = files[0] if len(files) == 1 else f"series of {len(files)} files"
        try:
            if args.series or (args.slice is None and _is_volume(files[0])):
                scan = predictor.predict_scan(load_volume(files))
                _print_prediction(f"{label} (scan of {scan.n_slices} slices)", scan)
                print(f"  slices used: {', '.join(map(str, scan.slices_used))} (agreement {scan.agreement:.0%})")
                continue
            img = load_image(files[0], slice_index=args.slice)
        except ImageLoadError as exc:
            print(f"{label}: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        _print_prediction(label, predictor.predict(img))
    return 1 if failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    import numpy as np

    from mrivision.errors import ImageLoadError
    from mrivision.inputs.image import load_image
    from mrivision.inference.predictor import load_model
    from mrivision.report import case_report
    from mrivision.inputs.volume import load_volume

    predictor = load_model(args.model, fast=False)
    try:
        if args.slice is None and (len(args.files) > 1 or _is_volume(args.files[0])):
            volume = load_volume(args.files)
            result = predictor.predict_scan(volume)
            shown = int(result.slices_used[int(np.argmax([result.per_slice[i].confidence for i in result.slices_used]))])
            image = volume.slices[shown]
        else:
            image = load_image(args.files[0], slice_index=args.slice)
            result = predictor.predict(image)
    except ImageLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    heat = predictor.explain(image, target=result.label)
    Path(args.out).write_bytes(case_report(predictor, result, image, heat))
    print(f"{result.label}: report written to {args.out}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from mrivision.explain.cam import overlay
    from mrivision.inputs.datasets import encode_png
    from mrivision.errors import ImageLoadError
    from mrivision.inputs.image import load_image
    from mrivision.inference.predictor import load_model

    predictor = load_model(args.model, fast=False)
    try:
        img = load_image(args.file, slice_index=args.slice)
    except ImageLoadError as exc:
        print(f"{args.file}: error: {exc}", file=sys.stderr)
        return 1
    heat = predictor.explain(img, method=args.method, target=args.target)
    out = Path(args.out)
    if args.overlay:
        import cv2

        cv2.imwrite(str(out), cv2.cvtColor((overlay(img, heat) * 255).astype("uint8"), cv2.COLOR_RGB2BGR))
    else:
        out.write_bytes(encode_png(heat))
    pred = predictor.predict(img)
    print(f"{args.file}: {pred.label} ({pred.confidence:.1%}); {args.method} heatmap written to {out}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.robustness:
        return _robustness(args)
    from mrivision.bench.latency.latency import run_bench

    return run_bench(args)


def _robustness(args: argparse.Namespace) -> int:
    from mrivision.inputs.datasets import load_dataset, read_sample
    from mrivision.inference.predictor import list_models, load_model
    from mrivision.evaluation.robustness import format_table, robustness, stratified_sample

    names = args.models.split(",") if args.models else [m for m in list_models() if m != "neurostagenet_random_split"]
    samples = load_dataset(args.data)
    picked = [samples[i] for i in stratified_sample([s.label for s in samples], args.n)]
    external = None
    if args.external and Path(args.external).exists():
        ext = load_dataset(args.external)
        external = ([read_sample(s) for s in ext], [s.label for s in ext])
    images = [read_sample(s) for s in picked]
    results = {}
    for name in names:
        predictor = load_model(name)
        if len(predictor.class_names) != 4:
            continue
        results[name] = robustness(predictor, images, [s.label for s in picked], external)
        print(f"{name}: done", file=sys.stderr)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from mrivision.model.card import list_shipped, read_card, resolve
    from mrivision.errors import ModelLoadError
    from mrivision.inference.engine_file import engine_path, load_engine
    from mrivision.model.spec import ModelSpec

    failed = 0
    for name in args.models or list_shipped():
        try:
            weights, card_path = resolve(name)
            card = read_card(card_path)
            if not args.force and load_engine(weights, card, ModelSpec.from_dict(card["spec"])) is not None:
                print(f"{engine_path(weights)}: up to date")
                continue
            if not card.get("weights_sha256"):
                raise ModelLoadError(f"{card_path} records no weights_sha256: an engine file could never be matched to it")
            from mrivision.inference.in_memory import export_engine
            from mrivision.model.weights import load_weights

            model, card = load_weights(weights)
            print(f"{export_engine(model, weights, card['weights_sha256'])}: written")
        except (ModelLoadError, KeyError, ValueError, TypeError, OSError) as exc:
            print(f"{name}: no engine file written: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _cmd_models(args: argparse.Namespace) -> int:
    from mrivision.model.zoo import get_spec, list_specs
    from mrivision.inference.predictor import list_models

    shipped = list_models()
    print("shipped (weights/):", ", ".join(shipped) or "none")
    print("registered specs:")
    for name in list_specs():
        spec = get_spec(name)
        print(f"  {name:18s} {spec.arch or spec.family:24s} {spec.input_size[0]}x{spec.input_size[1]}  {spec.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mrivision", description="Alzheimer's stage classification of brain MRI "
                                     "slices (research demo, not a diagnostic device).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("--config", required=True, help="configs/NAME.yaml")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--epochs", type=int)
    p.add_argument("--data", help="training data (class folders, .parquet or .csv)")
    p.add_argument("--test-data", dest="test_data", help="held-out test data evaluated into the card")
    p.add_argument("--out-dir", dest="out_dir", help="where weights and card go (default weights/)")
    p.add_argument("--run-dir", dest="run_dir", help="checkpoints and curves (default runs/)")
    p.add_argument("--limit", type=int, help="use only N training images (smoke test)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--label-names", help="comma-separated class names of integer labels 0,1,2,... in order")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("cv", help="subject-level K-fold cross-validation of a config (the selection signal)")
    p.add_argument("--config", required=True, help="configs/NAME.yaml")
    p.add_argument("--folds", type=int, help="number of folds (default: the config's, 5)")
    p.add_argument("--resume", action="store_true", help="keep finished folds, continue the running one")
    p.add_argument("--ship", action="store_true", help="then write the K fold models as one shipped model")
    p.add_argument("--data", help="training data (class folders, .parquet or .csv)")
    p.add_argument("--test-data", dest="test_data", help="the literature's test split, evaluated into the card")
    p.add_argument("--out-dir", dest="out_dir", help="where weights and card go (default weights/)")
    p.add_argument("--run-dir", dest="run_dir", help="folds, checkpoints and out-of-fold predictions (default runs/)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--limit", type=int, help="use only N training images (smoke test)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--label-names", help="comma-separated class names of integer labels 0,1,2,... in order")
    p.set_defaults(func=_cmd_cv)

    p = sub.add_parser("evaluate", help="evaluate a model on a data set with CIs")
    p.add_argument("--model", required=True, help="shipped name or .safetensors path")
    p.add_argument("--data", required=True, help="class folders, .parquet or .csv manifest (path,label[,group])")
    p.add_argument("--out", help="write predictions CSV here")
    p.add_argument("--json", help="write metrics JSON here")
    p.add_argument("--label-names", help="comma-separated names of integer labels 0,1,2,...")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over scans")
    p.set_defaults(func=_cmd_evaluate)

    default_model = os.environ.get("MRIVISION_MODEL", "default")
    p = sub.add_parser("predict", help="predict the stage of image files")
    p.add_argument("files", nargs="+")
    p.add_argument("--model", default=default_model)
    p.add_argument("--slice", type=int, help="predict this one slice of a 3-D volume (default: the whole scan)")
    p.add_argument("--series", action="store_true", help="the files are the slices of one scan (a DICOM series)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("report", help="write a printable PDF case report for a slice or a scan")
    p.add_argument("files", nargs="+", help="a slice, a volume, a .zip, or the files of one DICOM series")
    p.add_argument("--out", required=True, help="the PDF to write")
    p.add_argument("--model", default=default_model)
    p.add_argument("--slice", type=int, help="report this one slice of a 3-D volume")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("explain", help="write a CAM heatmap for an image")
    p.add_argument("file")
    p.add_argument("--model", default=default_model)
    p.add_argument("--method", default="gradcam")
    p.add_argument("--target", help="class to explain (default: predicted)")
    p.add_argument("--out", default="heatmap.png")
    p.add_argument("--overlay", action="store_true", help="write the heatmap blended over the slice")
    p.add_argument("--slice", type=int)
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("bench", help="CPU latency, throughput and memory of the shipped models")
    p.add_argument("--models", help="comma-separated (default: all shipped)")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--robustness", action="store_true",
                   help="accuracy and OOD rate under re-framings and intensity shifts, external cohort, non-brain probes")
    p.add_argument("--scan", action="store_true", help="time a 30-slice scan prediction and the PDF case report")
    p.add_argument("--data", default="../shared/data/alzheimer-4class/test", help="--robustness: labelled slices")
    p.add_argument("--external", default="../shared/data/oasis2-external-val/manifest.csv",
                   help="--robustness: the external cohort's manifest")
    p.add_argument("--n", type=int, default=300, help="--robustness: slices sampled (class-stratified)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("export", help="write each model's engine file (ONNX, for torch-free predictions)")
    p.add_argument("models", nargs="*", help="shipped names or .safetensors paths (default: all shipped)")
    p.add_argument("--force", action="store_true", help="rewrite engine files that are up to date")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("models", help="list shipped and registered models")
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mrivision.errors import ModelLoadError

    try:
        return args.func(args)
    except (ModelLoadError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
