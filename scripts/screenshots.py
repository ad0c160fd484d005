"""Take the README screenshots: Predict and Compare on an example slice, Whole scan on a volume, and Metrics.

    python scripts/screenshots.py   (needs /usr/bin/chromium; starts the app on a free port)

The Whole scan page gets the MNI152 template (nilearn's package data) written as a NIfTI volume. Each
picture is cropped to the part of the page the README is about and kept under MAX_BYTES.
"""
from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mrivision.anatomy.template import scan_affine, scan_nifti  # noqa: E402
from ui.app_server import running_app  # noqa: E402

ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
        "--no-first-run"]
EXAMPLE = ROOT / "examples/MildDemented_slice29_scan10.jpg"
WIDTH = 1400
SLOW_MS = 240_000  # CPU is slow and shared (the first heatmap imports torch)
MAX_BYTES = 250_000
MAIN = '[data-testid="stMain"]'


def wait_images(page: Page, n: int) -> None:
    """Wait until `n` of the page's st.image pictures have loaded."""
    page.wait_for_function(
        "n => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length >= n", arg=n, timeout=SLOW_MS)


def wait_settled(page: Page, quiet_s: float = 5.0) -> None:
    """Wait until the script run is over: no spinner, no "running" icon, the same pictures for `quiet_s`."""
    busy = '[data-testid="stSpinner"], [data-testid="stStatusWidgetRunningIcon"]'
    state = f"() => [!!document.querySelector('{busy}'), document.querySelectorAll('{MAIN} img').length]"
    deadline = time.monotonic() + SLOW_MS / 1000
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = page.evaluate(state)
        if now != last or now[0]:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)
    raise TimeoutError("the page did not settle")


def save_png(png: bytes, path: Path) -> None:
    """Write `png`; as a 256-colour palette PNG if the full-colour one is over MAX_BYTES."""
    if len(png) > MAX_BYTES:
        out = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, "PNG",
                                                                                                 optimize=True)
        png = out.getvalue()
    path.write_bytes(png)
    print(f"wrote {path.relative_to(ROOT)} ({len(png) / 1000:.0f} kB)")


def shoot(page: Page, name: str, stop_at: str | None = None) -> None:
    """Screenshot the page down to the heading `stop_at`, else to its end. The viewport grows to hold it:
    the app scrolls inside its main section, so a full-page shot would be only the viewport."""
    full = int(page.evaluate(f"() => document.querySelector('{MAIN}').scrollHeight"))
    page.set_viewport_size({"width": WIDTH, "height": full})
    time.sleep(3)  # charts redraw for the new size
    bottom = full
    if stop_at is not None:
        box = page.get_by_role("heading", name=stop_at).first.bounding_box()
        assert box is not None, f"no heading {stop_at!r}"
        bottom = int(box["y"]) - 8
    png = page.screenshot(clip={"x": 0, "y": 0, "width": WIDTH, "height": bottom})
    page.set_viewport_size({"width": WIDTH, "height": 1100})
    save_png(png, ROOT / "docs" / name)


def template_nifti(folder: Path) -> Path:
    """The MNI152 template as a 1 mm NIfTI volume (built from nilearn's package data: nothing downloads)."""
    path = folder / "mni152_template.nii.gz"
    path.write_bytes(scan_nifti(*scan_affine(), gz=True))
    return path


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, running_app() as url, sync_playwright() as p:
        volume = template_nifti(Path(tmp))
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 1100})
        page.set_default_timeout(SLOW_MS)

        page.goto(url, timeout=60_000)
        page.wait_for_selector("input[type=file]", state="attached", timeout=180_000)
        page.locator("input[type=file]").first.set_input_files(str(EXAMPLE))
        page.get_by_text("Predicted stage").first.wait_for()
        page.get_by_text("overlay for").first.wait_for()  # the heatmap is drawn
        wait_settled(page)
        shoot(page, "predict.png", stop_at="Tissue measures")

        page.goto(f"{url}/compare", timeout=60_000)
        choose = page.get_by_text("…or choose an earlier upload or an example")
        choose.wait_for()  # before the upload, the page offers the examples
        page.locator("input[type=file]").first.set_input_files(str(EXAMPLE))
        choose.wait_for(state="hidden")  # the upload is in
        page.locator('[data-testid="stDataFrame"]').first.wait_for()
        wait_settled(page)
        models = page.locator('[data-testid="stDataFrame"] tbody tr').count()
        assert models > 1, "the Compare table lists no models"
        wait_images(page, models)  # every model's heatmap
        shoot(page, "compare.png")

        page.goto(f"{url}/scan", timeout=60_000)
        page.wait_for_selector("input[type=file]", state="attached")
        page.locator("input[type=file]").first.set_input_files(str(volume))
        page.locator('[data-testid="stMetric"]').filter(has_text="Stage for the scan").wait_for()
        page.get_by_role("heading", name="Slices used").wait_for()
        page.get_by_role("heading", name="Tissue measures").wait_for()
        wait_settled(page)
        wait_images(page, 7)  # the sagittal view and the strip's six slices
        shoot(page, "scan.png", stop_at="Inspect a slice")

        page.goto(f"{url}/metrics", timeout=60_000)
        page.get_by_text("Confusion matrix").first.wait_for()
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        wait_settled(page)
        shoot(page, "metrics.png", stop_at="Per class (slice level)")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
