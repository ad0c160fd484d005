"""Take the README screenshots: the Predict page on an example slice and the Metrics page.

    python scripts/screenshots.py   (needs /usr/bin/chromium; starts the app on a free port)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ui.app_server import running_app  # noqa: E402

ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
        "--no-first-run"]


def main() -> int:
    with running_app() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url, timeout=60_000)
        page.wait_for_selector("input[type=file]", state="attached", timeout=180_000)
        page.locator("input[type=file]").first.set_input_files(str(ROOT / "examples/MildDemented_slice29_scan10.jpg"))
        page.get_by_text("Predicted stage").first.wait_for(timeout=240_000)
        page.get_by_text("overlay for").first.wait_for(timeout=240_000)  # the heatmap is drawn
        time.sleep(3)
        page.screenshot(path=str(ROOT / "docs/predict.png"), full_page=True)
        page.goto(f"{url}/metrics", timeout=60_000)
        page.get_by_text("Confusion matrix").first.wait_for(timeout=240_000)
        time.sleep(8)
        page.screenshot(path=str(ROOT / "docs/metrics.png"), full_page=True)
        browser.close()
    print("wrote docs/predict.png and docs/metrics.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
