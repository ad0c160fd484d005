#!/usr/bin/env python
"""Cold start of the app to its first prediction, as a user sees it (real server, headless Chromium).

    python scripts/bench_app_start.py [--runs 3] [--image examples/NonDemented_slice29_scan10.jpg]

Each run starts a fresh `streamlit run app.py` with the shipped weights, opens the page, uploads
the image (at once, or `--think` seconds later) and waits for the predicted stage and then the
heatmap overlay image in the card's method (drawn, not just its caption). Prints seconds from the
server launch (and from the upload) to each milestone; the browser is started before the clock.
Run 1 is the coldest (later runs find Python's files in the OS cache).
Needs Chromium at /usr/bin/chromium and playwright (both installed by scripts/test.sh).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ui.app_server import running_app  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"]
MILESTONES = ("server healthy", "page shown", "prediction shown", "heatmap shown")
# the overlay image itself has arrived and been decoded (its caption shows before the image loads)
HEATMAP_DRAWN = """() => [...document.querySelectorAll('[data-testid="stImage"]')].some(
    el => el.innerText.includes(" overlay for ")
          && [...el.querySelectorAll("img")].some(img => img.complete && img.naturalWidth > 0))"""


def one_run(browser, image: Path, think: float) -> dict[str, float]:
    """Seconds from `streamlit run` to each milestone, plus upload-to-prediction."""
    times = {}
    t0 = time.perf_counter()
    with running_app() as url:
        times["server healthy"] = time.perf_counter() - t0
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.get_by_text("Research demo — not a medical device").first.wait_for()
        times["page shown"] = time.perf_counter() - t0
        time.sleep(think)  # the user finding the file
        t_upload = time.perf_counter()
        page.locator("input[type=file]").first.set_input_files(str(image))
        page.locator('[data-testid="stMetric"]').filter(has_text="Predicted stage").locator(
            '[data-testid="stMetricValue"]').wait_for()
        times["prediction shown"] = time.perf_counter() - t0
        times["upload to prediction"] = time.perf_counter() - t_upload
        page.wait_for_function(HEATMAP_DRAWN)
        times["heatmap shown"] = time.perf_counter() - t0
        page.close()
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--image", type=Path, default=ROOT / "examples" / "NonDemented_slice29_scan10.jpg")
    ap.add_argument("--think", type=float, default=0.0,
                    help="seconds between the page showing and the upload (a user finding the file)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            runs = []
            for i in range(args.runs):
                runs.append(one_run(browser, args.image, args.think))
                print(f"run {i + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in runs[-1].items()), flush=True)
        finally:
            browser.close()
    print("median over runs: " + ", ".join(
        f"{k} {statistics.median(r[k] for r in runs):.1f} s" for k in (*MILESTONES, "upload to prediction")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
