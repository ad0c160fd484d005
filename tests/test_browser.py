"""End to end: a real `streamlit run app.py` server driven by headless Chromium (Playwright).

Uploads a generated PNG through the real file uploader and waits for the predicted stage and the
Grad-CAM overlay. Screenshots go to pytest's tmp_path and, if $MRIVISION_SCREENSHOT_DIR is set, there.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mrivision.constants import CLASS_NAMES
from synthetic import make_slice, write_png
from ui.app_server import running_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
               "--no-first-run"]
SLOW_MS = 240_000  # CPU is slow and shared with training jobs (first run imports torch)


@pytest.fixture
def server(tiny_model: Path, tmp_path: Path):
    with running_app({"MRIVISION_WEIGHTS_DIR": str(tiny_model.parent)}, log=tmp_path / "streamlit.log") as url:
        yield url


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
