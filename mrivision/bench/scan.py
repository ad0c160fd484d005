"""`mrivision bench --scan`: a whole scan's prediction (MNI placement included) on the MNI152
template stored two ways, a research scan (1 mm, 189 slices) and a clinical one (3 mm, 44 slices,
LPS, from above the cerebellum), and the case report's time."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from mrivision.bench.latency import pct, timed

TARGETS_S = {"1 mm, 189 slices": 1.5, "3 mm, 44 slices": 1.0}  # issue 21: registration included


def scan_volumes() -> dict[str, bytes]:
    """The two benchmark scans as NIfTI bytes (the template resampled; see `anatomy.template`)."""
    from mrivision.anatomy.template import scan_affine, scan_nifti

    return {"1 mm, 189 slices": scan_nifti(*scan_affine()),
            "3 mm, 44 slices": scan_nifti(*scan_affine((1.0, 1.0, 3.0), "LPS", (-40.0, 89.0)))}


def bench_scan(predictor: Any, runs: int = 10) -> dict[str, Any]:
    """Per benchmark scan: p50 wall and CPU seconds of `predict_scan` on the loaded volume and of
    reading the file; slices used and their MNI z. Then p50 seconds of the case report's PDF alone and
    with its Grad-CAM heatmap (what `mrivision report` does after loading the model)."""
    from mrivision.anatomy.tissue import clear_cache
    from mrivision.inputs.volume import load_volume
    from mrivision.report import case_report

    scans: dict[str, dict[str, Any]] = {}
    for name, data in scan_volumes().items():
        volume = load_volume(data)
        result = predictor.predict_scan(volume)  # warm: engine, template, registration
        wall, cpu = [], []
        for _ in range(runs):
            clear_cache()  # every run measures the slices' tissue afresh (a fusion model reads it)
            c = time.process_time()
            wall.append(timed(lambda: predictor.predict_scan(volume))[0])
            cpu.append(time.process_time() - c)
        z = [result.slice_z_mm[i] for i in result.slices_used] if result.slice_z_mm else [float("nan")]
        scans[name] = {"slices": result.n_slices, "used": len(result.slices_used), "z_min": min(z), "z_max": max(z),
                       "out_of_distribution": result.out_of_distribution,
                       "predict_scan_s_p50": pct(wall, 50), "predict_scan_cpu_s_p50": pct(cpu, 50),
                       "load_s_p50": pct([timed(lambda: load_volume(data))[0] for _ in range(min(runs, 3))], 50),
                       "target_s": TARGETS_S[name]}
    img = np.asarray(volume.slices[result.slices_used[0]])
    heat = predictor.explain(img)
    pdf = [timed(lambda: case_report(predictor, result, img, heat))[0] for _ in range(runs)]
    full = [timed(lambda: case_report(predictor, result, img, predictor.explain(img)))[0] for _ in range(runs)]
    return {"scans": scans, "report_pdf_s_p50": pct(pdf, 50), "report_with_gradcam_s_p50": pct(full, 50)}


def format_scan_bench(model: str, r: dict[str, Any]) -> str:
    """The `bench --scan` lines for one model."""
    lines = [f"{model}:"]
    for name, s in r["scans"].items():
        lines.append(f"  {name}: predicted in {s['predict_scan_s_p50']:.3f} s p50 ({s['predict_scan_cpu_s_p50']:.3f} s "
                     f"CPU; target {s['target_s']:.1f} s), file read {s['load_s_p50']:.3f} s; {s['used']} of "
                     f"{s['slices']} slices used, MNI z {s['z_min']:.0f} to {s['z_max']:.0f} mm"
                     + ("; OUT OF DISTRIBUTION" if s["out_of_distribution"] else ""))
    lines.append(f"  case report {r['report_pdf_s_p50']:.3f} s, "
                 f"with its Grad-CAM {r['report_with_gradcam_s_p50']:.3f} s")
    return "\n".join(lines)
