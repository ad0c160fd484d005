"""`mrivision train|cv|evaluate|predict|report|explain|bench|export|models` — the command-line front door."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fetch weights at run time

FAST_PATH_MIN_FILES = 8
DISTRIBUTED_HELP = """distributed (several processes, GPUs or machines; docs/distributed.md):
  run the same command under torchrun, e.g.
    torchrun --nproc_per_node 2 -m mrivision train --config configs/NAME.yaml
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 --rdzv_backend c10d \\
             --rdzv_endpoint HOST:29500 -m mrivision train --config configs/NAME.yaml
  backend: nccl with one GPU per process when CUDA is present, gloo on CPU (chosen automatically).
  --batch-size is the global batch; each process trains on batch_size / nproc of it.
  rank 0 alone writes checkpoints, cards and logs; --run-dir must be on a file system every node sees.
  --resume continues from the last checkpoint after any process died (same nproc or another)."""  # building the fast engine in memory pays off only over several images


def _cmd_train(args: argparse.Namespace) -> int:
    from mrivision.training.train import train

    cfg = _config(args)
    card = train(cfg, resume=args.resume)
    if _is_main_process():
        print(f"wrote {Path(cfg.out_dir) / (card.name + '.safetensors')} and its card")
    return 0


def _is_main_process() -> bool:
    """False on every torchrun process but rank 0 (which alone reports and ships)."""
    return os.environ.get("RANK", "0") == "0"


def _config(args: argparse.Namespace):
    from mrivision.training.config import TrainConfig

    cfg = TrainConfig.from_yaml(args.config)
    for key in ("epochs", "data", "test_data", "out_dir", "run_dir", "limit", "threads", "folds", "batch_size",
                "stream"):
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
    if args.ship and _is_main_process():
        card = ship_ensemble(cfg, summary)
        print(f"wrote {Path(cfg.out_dir) / (card.name + '.safetensors')} (the {cfg.folds} fold models) and its card")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mrivision.evaluation.tables import format_report
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
    """A zip, a folder (one DICOM series), or a file holding more than one slice."""
    from mrivision.inputs.image import describe_image

    if file.lower().endswith(".zip") or Path(file).is_dir():
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

    predictor = load_model(args.model, build=len(args.files) > FAST_PATH_MIN_FILES)
    failed = 0
    dicom = [f for f in args.files if f.lower().endswith((".dcm", ".dicom"))]
    if args.series or (args.slice is None and len(dicom) > 1):  # DICOM files form one series, as in the app
        groups = [args.files] if args.series else [dicom] + [[f] for f in args.files if f not in dicom]
    else:
        groups = [[f] for f in args.files]
    for files in groups:
        label = files[0] if len(files) == 1 else f"series of {len(files)} files"
        try:
            if len(files) > 1 or (args.slice is None and _is_volume(files[0])):
                scan = predictor.predict_scan(files)
                _print_prediction(f"{label} (scan of {scan.n_slices} slices)", scan)
                print(f"  slices used: {', '.join(map(str, scan.slices_used))} (agreement {scan.agreement:.0%})")
                if scan.slice_z_mm:
                    z = [scan.slice_z_mm[i] for i in scan.slices_used]
                    print(f"  at MNI z {min(z):.0f} to {max(z):.0f} mm (trained band {scan.band_mm[0]:.0f} to "
                          f"{scan.band_mm[1]:.0f} mm)")
                if scan.out_of_distribution:
                    print("  out of distribution: this scan is unlike the T1 scans the model was trained on")
                continue
            img = load_image(files[0], slice_index=args.slice)
        except ImageLoadError as exc:
            print(f"{label}: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        _print_prediction(label, predictor.predict(img))
    return 1 if failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from mrivision.errors import ImageLoadError
    from mrivision.inputs.image import load_image
    from mrivision.inference.predictor import load_model
    from mrivision.report import case_report, report_slice
    from mrivision.inference.scan import as_volume
    from mrivision.anatomy.atrophy import measure_atrophy

    predictor = load_model(args.model, build=False)  # the engine file scores when there is one; no build for one report
    try:
        if args.slice is None and (len(args.files) > 1 or _is_volume(args.files[0])):
            volume = as_volume(args.files)
            result = predictor.predict_scan(volume)
            shown = report_slice(result)  # the app's report shows the same slice
            image = volume.slices[shown]
        else:
            image = load_image(args.files[0], slice_index=args.slice)
            result = predictor.predict(image)
            shown = args.slice
    except ImageLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    heat = predictor.explain(image, target=result.label) if args.heatmap else None  # the card's method (CAM: torch)
    try:  # the tissue measures of the slices the stage came from
        scan = hasattr(result, "slices_used")
        atrophy = measure_atrophy(volume, result.slices_used) if scan else measure_atrophy(image)
    except ValueError:  # no brain found: the report goes without them
        atrophy = None
    Path(args.out).write_bytes(case_report(predictor, result, image, heat, slice_index=shown, label=args.label,
                                           atrophy=atrophy))
    print(f"{result.label}: report written to {args.out}" + ("" if shown is None else f" (it shows slice {shown})"))
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from mrivision.explain.heatmap import overlay
    from mrivision.inputs.datasets import encode_png
    from mrivision.errors import ImageLoadError
    from mrivision.inputs.image import load_image
    from mrivision.inference.predictor import load_model

    predictor = load_model(args.model, build=False)  # occlusion runs on the engine file; a CAM loads torch
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
    method = args.method or predictor.card.heatmap_method
    print(f"{args.file}: {pred.label} ({pred.confidence:.1%}); {method} heatmap written to {out}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.robustness:
        return _robustness(args)
    from mrivision.bench.cli import run_bench

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
    from mrivision.inference.export import export_engine_files

    failed = 0
    for r in export_engine_files(args.models, force=args.force):
        if r.ok:
            print(f"{r.path}: {r.status}")
        else:
            print(f"{r.name}: no engine file written: {r.status}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _cmd_models(args: argparse.Namespace) -> int:
    from mrivision.model.card import default_shipped
    from mrivision.model.zoo import get_spec, list_specs
    from mrivision.inference.predictor import list_models

    shipped = list_models()
    default = default_shipped()
    print("shipped models (weights/; * marks the default, used when --model is not given):" if shipped
          else "shipped models (weights/): none")
    for name in shipped:
        print(f"  {'*' if name == default else ' '} {name}")
    print("registered specs:")
    for name in list_specs():
        spec = get_spec(name)
        print(f"  {name:18s} {spec.arch or spec.family:24s} {spec.input_size[0]}x{spec.input_size[1]}  {spec.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mrivision", description="Alzheimer's stage classification of brain MRI "
                                     "slices (research demo, not a diagnostic device).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config", epilog=DISTRIBUTED_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="configs/NAME.yaml")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint (also after any "
                   "process of a distributed run died)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int, help="the global batch (split evenly over the "
                   "processes of a distributed run; default: the config's)")
    p.add_argument("--data", help="training data (class folders, .parquet or .csv)")
    p.add_argument("--stream", action="store_true", default=None, help="read --data (a .parquet file or a folder "
                   "of .parquet shards with a group column) a row group at a time instead of into memory")
    p.add_argument("--test-data", dest="test_data", help="held-out test data evaluated into the card")
    p.add_argument("--out-dir", dest="out_dir", help="where weights and card go (default weights/)")
    p.add_argument("--run-dir", dest="run_dir", help="checkpoints and curves (default runs/)")
    p.add_argument("--limit", type=int, help="use only N training images (smoke test)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--label-names", help="comma-separated class names of integer labels 0,1,2,... in order")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("cv", help="subject-level K-fold cross-validation of a config (the selection signal)",
                       epilog=DISTRIBUTED_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="configs/NAME.yaml")
    p.add_argument("--folds", type=int, help="number of folds (default: the config's, 5)")
    p.add_argument("--resume", action="store_true", help="keep finished folds, continue the running one")
    p.add_argument("--ship", action="store_true", help="then write the K fold models as one shipped model")
    p.add_argument("--data", help="training data (class folders, .parquet or .csv)")
    p.add_argument("--test-data", dest="test_data", help="the literature's test split, evaluated into the card")
    p.add_argument("--out-dir", dest="out_dir", help="where weights and card go (default weights/)")
    p.add_argument("--run-dir", dest="run_dir", help="folds, checkpoints and out-of-fold predictions (default runs/)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int, help="the global batch (split evenly over the "
                   "processes of a distributed run; default: the config's)")
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
    model_help = ("a shipped model's name (`mrivision models` lists them), or a .safetensors path; default: "
                  "$MRIVISION_MODEL, else the shipped default")
    p = sub.add_parser("predict", help="predict the stage of image files")
    p.add_argument("files", nargs="+")
    p.add_argument("--model", default=default_model, help=model_help)
    p.add_argument("--slice", type=int, help="predict this one slice of a 3-D volume (default: the whole scan)")
    p.add_argument("--series", action="store_true", help="the files are the slices of one scan (a DICOM series)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("report", help="write a printable PDF case report for a slice or a scan")
    p.add_argument("files", nargs="+", help="a slice, a volume, a .zip, or the files of one DICOM series")
    p.add_argument("--out", required=True, help="the PDF to write")
    p.add_argument("--model", default=default_model, help=model_help)
    p.add_argument("--slice", type=int, help="report this one slice of a 3-D volume")
    p.add_argument("--label", help="a case label printed on the report (free text you choose; never read from "
                                   "the file)")
    p.add_argument("--heatmap", action="store_true", help="add the heatmap of the card's method beside the slice, as "
                   "the app's report has (a CAM loads PyTorch: a few seconds more)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("explain", help="write a CAM heatmap for an image")
    p.add_argument("file")
    p.add_argument("--model", default=default_model, help=model_help)
    p.add_argument("--method", help="heatmap method: a Grad-CAM-family one (gradcam, hirescam, layercam, ...), occlusion "
                                    "or iterative_occlusion (default: the one the model's card chose, else gradcam)")
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
    p.add_argument("--scan", action="store_true", help="time whole-scan prediction (MNI placement included) on the template as a 1 mm 189-slice "
                   "and a 3 mm 44-slice scan, and the PDF case report")
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
