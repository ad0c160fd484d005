"""End to end: a real `streamlit run app.py` server driven by headless Chromium (Playwright).

One server and one browser for the module; every page is opened as a user would and fails on what a
user would notice: an upload that ends in neither a result nor a message naming the file, a table
cell reading "None" or an empty column, a raw `{...}` dict, a traceback, or any request to a host
other than the app's own (every request is recorded: a hospital network is offline).
Screenshots go to pytest's tmp_path and, if $MRIVISION_SCREENSHOT_DIR is set, there.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from mrivision.constants import CLASS_NAMES
from synthetic import make_slice, write_png
from ui.app_server import running_app

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                                 reason="Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")]

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
               "--no-first-run"]
SLOW_MS = 240_000  # CPU is slow and shared (the first heatmap imports torch)
FAITHFULNESS = {"data": "8 test slices", "sentence": "Removing the hottest 20% of the heatmap lowers confidence.",
                "gradcam": {"road_morf": {"10": 0.2, "20": 0.3}, "top20_drop": 0.25}}


@pytest.fixture(scope="module")
def weights(tiny_model: Path, tmp_path_factory) -> Path:
    """The tiny model, its card with a faithfulness section (the Metrics page must show it as text)."""
    folder = tmp_path_factory.mktemp("browser_weights")
    shutil.copy(tiny_model, folder / "tiny.safetensors")
    shutil.copy(tiny_model.with_suffix(".predictions.csv"), folder / "tiny.predictions.csv")
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    (folder / "tiny.json").write_text(json.dumps({**card, "faithfulness": FAITHFULNESS}))
    return folder


@pytest.fixture(scope="module")
def server(weights: Path, tmp_path_factory):
    log = tmp_path_factory.mktemp("browser_log") / "streamlit.log"
    with running_app({"MRIVISION_WEIGHTS_DIR": str(weights)}, log=log) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server: str):
    """A fresh tab that records every request; after the test, none may have left the app's host."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    tab = context.new_page()
    tab.set_default_timeout(SLOW_MS)
    tab.app_url = server
    yield tab
    host = urlparse(server).netloc
    foreign = [u for u in requests if not u.startswith(("data:", "blob:")) and urlparse(u).netloc != host]
    context.close()
    assert not foreign, f"requests to other hosts: {foreign}"


def open_page(tab, path: str = "") -> None:
    tab.goto(f"{tab.app_url}/{path}")
    tab.get_by_text("Research demo — not a medical device").first.wait_for()


def upload(tab, *files) -> None:
    tab.locator("input[type=file]").first.set_input_files(list(files))


def wait_images(tab, n: int) -> None:
    tab.wait_for_function(
        f"() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
        f".filter(i => i.complete && i.naturalWidth > 0).length >= {n}")


def wait_cell(tab, text: str) -> None:
    """Wait for a table cell holding `text` (the grid draws on a canvas; its cells are a hidden table)."""
    tab.locator('[data-testid="stDataFrame"] td').filter(has_text=text).first.wait_for(state="attached")


def assert_reads_well(tab) -> None:
    """No traceback, no raw dict, no table cell reading "None" or left empty."""
    assert tab.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in tab.content()
    assert tab.locator('[data-testid="stJson"]').count() == 0, "a raw dict is shown"
    for grid in tab.locator('[data-testid="stDataFrame"]').all():
        cells = [c.strip() for c in grid.locator("td").all_inner_texts()]
        assert cells and "None" not in cells and "" not in cells, cells


def save_screenshot(tab, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    tab.screenshot(path=str(shot), full_page=True)
    extra = os.environ.get("MRIVISION_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(extra) / name)


def slice_png(path: Path, label: int = 2, seed: int = 7) -> Path:
    write_png(path, make_slice(label, np.random.default_rng(seed)))
    return path


def test_predict(page, tmp_path: Path):
    open_page(page)
    upload(page, slice_png(tmp_path / "upload_slice.png"))
    stage = page.locator('[data-testid="stMetric"]').filter(has_text="Predicted stage")
    assert stage.locator('[data-testid="stMetricValue"]').inner_text().strip() in CLASS_NAMES
    page.get_by_text("Grad-CAM overlay for").first.wait_for()
    wait_images(page, 2)  # the slice and its Grad-CAM overlay
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    page.get_by_role("button", name="Download case report (PDF)").wait_for()
    save_screenshot(page, tmp_path, "predict.png")

    # a text file named .png added beside the good one: a message naming it, and a table with both
    bad = tmp_path / "not_an_image.png"
    bad.write_text("this is a text file with a .png name\n" * 3)
    upload(page, bad)  # the uploader adds it to the files already there
    page.get_by_text("not_an_image.png could not be read").first.wait_for()
    page.get_by_text("Results for 2 files").wait_for()
    wait_cell(page, "upload_slice.png")
    assert_reads_well(page)


def test_whole_scan(page, tmp_path: Path):
    open_page(page, "scan")
    one = tmp_path / "one_slice.png"
    slice_png(one)
    upload(page, one)  # one picture: a stage, not silence
    page.locator('[data-testid="stMetric"]').filter(has_text="Stage for the scan").wait_for()
    page.get_by_text("one_slice.png is a single slice").wait_for()
    assert_reads_well(page)

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    upload(page, empty)  # an empty file beside the good one is named
    page.get_by_text("empty.png could not be read").first.wait_for()
    assert_reads_well(page)


def test_overlay(page, tmp_path: Path):
    open_page(page, "overlay")
    upload(page, slice_png(tmp_path / "overlay_slice.png", label=1))
    page.get_by_text("Predicted stage:").first.wait_for()
    page.get_by_role("button", name="Download overlay (PNG)").wait_for()
    wait_images(page, 3)  # original, heatmap, overlay
    assert_reads_well(page)


def test_compare(page, tmp_path: Path):
    open_page(page, "compare")
    upload(page, slice_png(tmp_path / "compare_slice.png", label=3))
    page.get_by_text("Only one model is available").wait_for()
    wait_cell(page, "tiny")
    wait_cell(page, "not measured")  # the tiny model has no new-patient figure: it says so
    assert_reads_well(page)


def test_metrics(page, tmp_path: Path):
    open_page(page, "metrics")
    page.get_by_text("All models").wait_for()
    page.get_by_text("Removing the hottest 20% of the heatmap lowers confidence.").wait_for()
    wait_cell(page, "tiny")
    page.locator('[data-testid="stPlotlyChart"]').nth(1).wait_for()  # the ROC curves
    assert_reads_well(page)
    save_screenshot(page, tmp_path, "metrics.png")


def test_about(page):
    open_page(page, "about")
    page.get_by_text("tiny (default)").wait_for()  # the only model: its card is open
    page.get_by_text("Classes:").wait_for()
    wait_cell(page, "")
    assert_reads_well(page)
