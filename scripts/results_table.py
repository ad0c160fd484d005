"""Regenerate the README results table from the model cards in weights/ (never hand-typed)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from mrivision.evaluation.metrics import binary_auc_with_ci, value_with_ci

ROOT = Path(__file__).resolve().parent.parent


def row(card: dict) -> str:
    metrics = card.get("metrics", {})
    cv, ext, test = metrics.get("cv"), metrics.get("external"), metrics.get("test")
    train = card.get("training", {})
    lesson = "random" in train.get("split", "")
    framing = card["spec"].get("framing", "letterbox")
    ensemble = f", {card['spec']['ensemble']}-fold ensemble" if card["spec"].get("ensemble") else ""
    cells = [f"`{card['name']}`" + (" (lesson: leaky)" if lesson else ""),
             f"{card['spec'].get('arch') or card['spec']['family']}{ensemble}",
             f"{card['spec']['input_size'][0]}x{card['spec']['input_size'][1]} {framing}", str(len(card["class_names"]))]
    cells += [value_with_ci(cv, "scan", "balanced_accuracy", "–"), binary_auc_with_ci(cv, missing="–")] if cv else ["not measured", "–"]
    cells += [value_with_ci(ext, "scan", "balanced_accuracy", "–"), binary_auc_with_ci(ext, missing="–")] if ext else ["–", "–"]
    if test:
        cells += [value_with_ci(test, level, key, "–") for level, key in (("slice", "accuracy"), ("slice", "macro_f1"), ("scan", "accuracy"))]
    else:
        cells += ["–"] * 3
    faith = card.get("faithfulness", {})
    cells.append(f"{faith['gradcam']['top20_drop'] * 100:.0f} vs {faith['random']['top20_drop'] * 100:.0f} pp"
                 if "gradcam" in faith else "–")
    return "| " + " | ".join(cells) + " |"


def table(weights: Path) -> str:
    cards = [json.loads(p.read_text()) for p in sorted(weights.glob("*.json"))]
    head = ("| model | backbone | input, framing | classes | new patients: CV subject bal. acc. [95% CI] "
            "| CV impaired AUC | external cohort bal. acc. [95% CI] | external impaired AUC [95% CI] "
            "| test/ slice accuracy [95% CI] | test/ slice macro-F1 | test/ scan accuracy "
            "| Grad-CAM top-20% removal vs random |\n" + "|---" * 12 + "|")
    return "\n".join([head] + [row(c) for c in cards if "spec" in c])


def _ms(bench: dict, key: str) -> str:
    return f"{bench[key]:.0f}" if isinstance(bench.get(key), (int, float)) else "–"


def cost_row(card: dict, weights: Path) -> str:
    train, bench = card.get("training", {}), card.get("bench", {})
    test = card.get("metrics", {}).get("test", {}).get("slice", {})
    file = weights / f"{card['name']}.safetensors"
    size_mb = file.stat().st_size / 1e6 if file.is_file() else 0.0
    hardware = train.get("hardware", "")
    binary = " (2 classes)" if len(card.get("class_names", [])) == 2 else ""
    cells = [f"`{card['name']}`", f"{test['accuracy']:.3f}{binary}" if "accuracy" in test else "–",
             f"{card.get('parameters', 0) / 1e6:.1f} M", f"{size_mb:.0f} MB",
             f"{train.get('seconds', 0) / 60:.0f} min", hardware.split(",")[1].strip() if "," in hardware else "?",
             f"{train['peak_rss_mb'] / 1024:.1f} GB" if "peak_rss_mb" in train else "–",
             _ms(bench, "predict_ms_p50"), _ms(bench, "naive_ms_p50"), _ms(bench, "forward_ms_p50"),
             f"{bench['speedup']:.1f}x" if "speedup" in bench else "–", _ms(bench, "predict_cam_ms_p50"),
             f"{bench['throughput_b32']:.0f}" if "throughput_b32" in bench else "–",
             _ms(bench, "peak_rss_mb")]
    return "| " + " | ".join(cells) + " |"


def cost_table(weights: Path) -> str:
    """Accuracy against training time and memory, and CPU inference cost (`bench` in the cards)."""
    cards = [json.loads(p.read_text()) for p in sorted(weights.glob("*.json"))]
    head = ("| model | test slice acc. | params | weights (fp16) | train time | trained on | train peak RAM "
            "| predict p50 (ms) | naive p50 (ms) | fast forward p50 (ms) | speedup | predict + Grad-CAM p50 (ms) "
            "| batch-32 img/s | inference peak RSS (MB) |\n" + "|---" * 14 + "|")
    return "\n".join([head] + [cost_row(c, weights) for c in cards if "spec" in c])


def leakage_table(weights: Path) -> str:
    """Random re-split validation vs the honest numbers of the same architecture."""
    rows = []
    for path in sorted(weights.glob("*.json")):
        leaky = json.loads(path.read_text())
        lesson = leaky.get("leakage_lesson")
        if not lesson or not (weights / f"{lesson['compare_with']}.json").is_file():
            continue
        honest = json.loads((weights / f"{lesson['compare_with']}.json").read_text())
        lv, hv = leaky["training"]["best_val"], honest["training"]["best_val"]
        test = honest["metrics"]["test"]["slice"]
        rows += [f"| `{leaky['name']}` | random re-split of all 6,400 slices (scans on both sides) | "
                 f"{lv['val_accuracy']:.3f} | {lv['val_auc']:.3f} |",
                 f"| `{honest['name']}` | new-subject validation carved from train/ | "
                 f"{hv['val_accuracy']:.3f} | {hv['val_auc']:.3f} |",
                 f"| `{honest['name']}` | original test/ split | {test['accuracy']:.3f} | {test['roc_auc_macro']:.3f} |"]
    head = "| model | evaluated on | accuracy | OvR AUC |\n|---|---|---|---|"
    return "\n".join([head] + rows)


def replace(text: str, tag: str, body: str) -> str:
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    return re.sub(f"{re.escape(begin)}.*?{re.escape(end)}", lambda _: f"{begin}\n{body}\n{end}", text, flags=re.S)


def main() -> int:
    readme = ROOT / "README.md"
    weights = ROOT / "weights"
    text = replace(readme.read_text(), "results", table(weights))
    text = replace(text, "cost", cost_table(weights))
    readme.write_text(replace(text, "leakage", leakage_table(weights)))
    print(table(weights), cost_table(weights), leakage_table(weights), sep="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
