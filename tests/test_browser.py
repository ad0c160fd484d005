"""End to end: a real `streamlit run app.py` server driven by headless Chromium (Playwright).

Uploads a generated PNG through the real file uploader and waits for the predicted stage and the
Grad-CAM overlay. Screenshots go to pytest's tmp_path and, if $MRIVISION_SCREENSHOT_DIR is set, there.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mrivision.constants import CLASS_NAMES
from synthetic import make_slice, write_png

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
               "--no-first-run"]
SLOW_MS = 240_000  # CPU is slow and shared with training jobs (first run imports torch)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not become healthy in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tiny_model: Path, tmp_path: Path):
    port = free_port()
    env = {**os.environ, "MRIVISION_WEIGHTS_DIR": str(tiny_model.parent), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = tmp_path / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    extra = os.environ.get("MRIVISION_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(extra) / name)
    return shot


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium is not installed at {CHROMIUM} "
                                                        "(apt-get install -y chromium)")
def test_upload_predict_and_heatmap(server: str, tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    png = tmp_path / "upload_slice.png"
    write_png(png, make_slice(2, np.random.default_rng(7)))
    bad = tmp_path / "not_an_image.png"
    bad.write_text("this is a text file with a .png name\n" * 3)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(SLOW_MS)
            page.goto(server)
            page.get_by_text("Research demo — not a medical device").first.wait_for()
            page.locator("input[type=file]").first.set_input_files(str(png))

            stage = page.locator('[data-testid="stMetric"]').filter(has_text="Predicted stage")
            stage.locator('[data-testid="stMetricValue"]').wait_for()
            assert stage.locator('[data-testid="stMetricValue"]').inner_text().strip() in CLASS_NAMES
            page.get_by_text("Grad-CAM overlay for").first.wait_for()
            images = page.locator('[data-testid="stImage"] img')
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
                ".filter(i => i.complete && i.naturalWidth > 0).length >= 2")
            assert images.count() >= 2  # the slice and its Grad-CAM overlay
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
            assert page.locator('[data-testid="stException"]').count() == 0
            save_screenshot(page, tmp_path, "predict.png")

            # a text file named .png: a plain error, no traceback, and the good file still has its result
            page.locator("input[type=file]").first.set_input_files(str(bad))
            page.get_by_text("not_an_image.png could not be read").first.wait_for()
            page.get_by_text("Results for 2 files").wait_for()
            assert page.locator('[data-testid="stException"]').count() == 0
            assert "Traceback" not in page.content()
            save_screenshot(page, tmp_path, "predict_error.png")
        finally:
            browser.close()
