"""Regenerate the results, cost and leakage tables (README.md, docs/) from the model cards in weights/ (never hand-typed)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from mrivision.evaluation.tables import binary_auc_with_ci, value_with_ci
from mrivision.model.card import ModelCard

ROOT = Path(__file__).resolve().parent.parent


def cards(weights: Path) -> list[ModelCard]:
    return [ModelCard.read(p) for p in sorted(weights.glob("*.json"))]


def row(card: ModelCard) -> str:
    cv, ext, test = card.metrics_for("cv"), card.metrics_for("external"), card.metrics_for("test")
    spec = card.spec
    ensemble = f", {spec.ensemble}-fold ensemble" if spec.ensemble else ""
    cells = [f"`{card.name}`" + (" (lesson: leaky)" if card.is_lesson else ""),
             f"{spec.arch or spec.family}{ensemble}",
             f"{spec.input_size[0]}x{spec.input_size[1]} {spec.framing}", str(len(card.class_names))]
    cells += [value_with_ci(cv, "scan", "balanced_accuracy", "–"), binary_auc_with_ci(cv, missing="–")] if cv else ["not measured", "–"]
    cells += [value_with_ci(ext, "scan", "balanced_accuracy", "–"), binary_auc_with_ci(ext, missing="–")] if ext else ["–", "–"]
    if test:
        cells += [value_with_ci(test, level, key, "–") for level, key in (("slice", "accuracy"), ("slice", "macro_f1"), ("scan", "accuracy"))]
    else:
        cells += ["–"] * 3
    faith = card.faithfulness or {}
    cells.append(f"{faith['gradcam']['top20_drop'] * 100:.0f} vs {faith['random']['top20_drop'] * 100:.0f} pp"
                 if "gradcam" in faith else "–")
    return "| " + " | ".join(cells) + " |"


def table(weights: Path) -> str:
    head = ("| model | backbone | input, framing | classes | new patients: CV subject bal. acc. [95% CI] "
            "| CV impaired AUC | external cohort bal. acc. [95% CI] | external impaired AUC [95% CI] "
            "| test/ slice accuracy [95% CI] | test/ slice macro-F1 | test/ scan accuracy "
            "| Grad-CAM top-20% removal vs random |\n" + "|---" * 12 + "|")
    return "\n".join([head] + [row(c) for c in cards(weights)])


def _ms(card: ModelCard, key: str, fmt: str = "{:.0f}") -> str:
    value = card.bench_value(key)
    return "–" if value is None else fmt.format(value)


def cost_row(card: ModelCard, weights: Path) -> str:
    train = card.training
    accuracy = card.test_metric("accuracy")
    file = weights / card.weights_file
    size_mb = file.stat().st_size / 1e6 if file.is_file() else 0.0
    hardware = train.hardware if train else ""
    binary = " (2 classes)" if len(card.class_names) == 2 else ""
    cells = [f"`{card.name}`", f"{accuracy:.3f}{binary}" if accuracy is not None else "–",
             f"{(card.parameters or 0) / 1e6:.1f} M", f"{size_mb:.0f} MB",
             f"{(train.seconds if train else 0) / 60:.0f} min", hardware.split(",")[1].strip() if "," in hardware else "?",
             f"{train.peak_rss_mb / 1024:.1f} GB" if train else "–",
             _ms(card, "predict_ms_p50"), _ms(card, "naive_ms_p50"), _ms(card, "forward_ms_p50"),
             _ms(card, "speedup", "{:.1f}x"), _ms(card, "predict_cam_ms_p50"), _ms(card, "throughput_b32"),
             _ms(card, "peak_rss_mb")]
    return "| " + " | ".join(cells) + " |"


def cost_table(weights: Path) -> str:
    """Accuracy against training time and memory, and CPU inference cost (`bench` in the cards)."""
    head = ("| model | test slice acc. | params | weights (fp16) | train time | trained on | train peak RAM "
            "| predict p50 (ms) | naive p50 (ms) | fast forward p50 (ms) | speedup | predict + Grad-CAM p50 (ms) "
            "| batch-32 img/s | inference peak RSS (MB) |\n" + "|---" * 14 + "|")
    return "\n".join([head] + [cost_row(c, weights) for c in cards(weights)])


def leakage_table(weights: Path) -> str:
    """Random re-split validation vs the honest numbers of the same architecture."""
    rows = []
    for leaky in cards(weights):
        lesson = leaky.leakage_lesson
        if not lesson or not (weights / f"{lesson['compare_with']}.json").is_file():
            continue
        honest = ModelCard.read(weights / f"{lesson['compare_with']}.json")
        lv, hv = leaky.training.best_val, honest.training.best_val
        test = honest.metrics["test"]["slice"]
        rows += [f"| `{leaky.name}` | random re-split of all 6,400 slices (scans on both sides) | "
                 f"{lv['val_accuracy']:.3f} | {lv['val_auc']:.3f} |",
                 f"| `{honest.name}` | new-subject validation carved from train/ | "
                 f"{hv['val_accuracy']:.3f} | {hv['val_auc']:.3f} |",
                 f"| `{honest.name}` | original test/ split | {test['accuracy']:.3f} | {test['roc_auc_macro']:.3f} |"]
    head = "| model | evaluated on | accuracy | OvR AUC |\n|---|---|---|---|"
    return "\n".join([head] + rows)


def replace(text: str, tag: str, body: str) -> str:
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    return re.sub(f"{re.escape(begin)}.*?{re.escape(end)}", lambda _: f"{begin}\n{body}\n{end}", text, flags=re.S)


def main() -> int:
    weights = ROOT / "weights"
    tables = {"results": table(weights), "cost": cost_table(weights), "leakage": leakage_table(weights)}
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:  # each table where its markers are
        text = doc.read_text()
        for tag, body in tables.items():
            text = replace(text, tag, body)
        doc.write_text(text)
    print(table(weights), cost_table(weights), leakage_table(weights), sep="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
