"""Take the README screenshots: the Predict page on an example slice and the Metrics page.

    python scripts/screenshots.py   (needs /usr/bin/chromium; starts the app on a free port)
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
        "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                              "--server.headless", "true"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            url = f"http://127.0.0.1:{port}"
            for _ in range(120):
                try:
                    page.goto(url, timeout=5000)
                    break
                except Exception:
                    time.sleep(1)
            page.wait_for_selector("input[type=file]", state="attached", timeout=180_000)
            page.locator("input[type=file]").first.set_input_files(str(ROOT / "examples/MildDemented_slice29_scan10.jpg"))
            page.get_by_text("Predicted stage").first.wait_for(timeout=240_000)
            time.sleep(8)
            page.screenshot(path=str(ROOT / "docs/predict.png"), full_page=True)
            page.goto(f"{url}/metrics", timeout=60_000)
            page.get_by_text("Confusion matrix").first.wait_for(timeout=240_000)
            time.sleep(8)
            page.screenshot(path=str(ROOT / "docs/metrics.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
    print("wrote docs/predict.png and docs/metrics.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
