"""Integrity and privacy: damaged or swapped weights are refused in plain words; a session
makes no network connection and writes no file; uploaded file names are never rendered as
HTML; one Predictor serves threads correctly. All inputs are generated here."""
from __future__ import annotations

import ast
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from streamlit.testing.v1 import AppTest  # imported here: it makes its own temp folder when imported

from mrivision import ModelLoadError, load_image, load_model
from mrivision.model.zoo import create_model
from mrivision.model.spec import ModelSpec
from mrivision.inference.predictor import Predictor
from mrivision.model.card import sha256_file
from synthetic import make_slice

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
APP_SOURCES = [APP, *sorted((ROOT / "ui").glob("*.py")), *sorted((ROOT / "app_pages").glob("*.py")),
               *sorted((ROOT / "pages").glob("*.py"))]
APP_PAGES = [p.relative_to(ROOT).as_posix() for d in ("app_pages", "pages") for p in sorted((ROOT / d).glob("*.py"))]
HTML_NAME = "<img src=x onerror=alert(1)>.png"
TIMEOUT = 90


def png_bytes(label: int = 2, seed: int = 0) -> bytes:
    ok, buf = cv2.imencode(".png", np.clip(make_slice(label, np.random.default_rng(seed)) * 255 + 0.5, 0, 255)
                           .astype(np.uint8))
    assert ok
    return buf.tobytes()


def nifti_gz_bytes() -> bytes:
    rng = np.random.default_rng(3)
    volume = np.stack([make_slice(1, rng) for _ in range(5)], axis=-1)
    return gzip.compress(nib.Nifti1Image(volume.astype(np.float32), np.eye(4)).to_bytes())


def copy_model(tiny_model: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_model.with_suffix(suffix), folder / f"tiny{suffix}")
    return folder / "tiny.safetensors"


def refused(path: Path) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    message = str(info.value)
    assert "Traceback" not in message and 'File "' not in message and "\n" not in message, message
    return message


# --- weights integrity -------------------------------------------------------------------------


def test_corrupted_weights_are_refused(tiny_model, tmp_path):
    weights = copy_model(tiny_model, tmp_path)
    data = bytearray(weights.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    weights.write_bytes(bytes(data))
    message = refused(weights)
    assert "tiny.safetensors" in message and "SHA-256" in message


def test_truncated_weights_are_refused(tiny_model, tmp_path):
    weights = copy_model(tiny_model, tmp_path)
    weights.write_bytes(weights.read_bytes()[:1000])
    assert "tiny.safetensors" in refused(weights)


def test_other_weights_of_the_same_model_are_refused(tiny_model, tmp_path):
    weights = copy_model(tiny_model, tmp_path)
    state = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in load_file(str(weights)).items()}
    save_file(state, str(weights))
    message = refused(weights)
    assert "tiny.safetensors" in message and "does not match" in message


def test_weights_of_another_architecture_are_refused_even_with_a_matching_hash(tiny_model, tmp_path):
    weights = copy_model(tiny_model, tmp_path)
    card = json.loads(weights.with_suffix(".json").read_text())
    other = ModelSpec.from_dict({**card["spec"], "extra": {"widths": [4, 8, 8, 8]}})
    save_file({k: v.contiguous() for k, v in create_model(other, pretrained=False).state_dict().items()},
              str(weights))
    card["weights_sha256"] = sha256_file(weights)  # someone "fixed" the hash: the shapes still differ
    weights.with_suffix(".json").write_text(json.dumps(card))
    message = refused(weights)
    assert "tiny.safetensors" in message and "could not be loaded" in message


@pytest.mark.parametrize("missing", [".json", ".safetensors"])
def test_missing_file_is_refused(tiny_model, tmp_path, missing):
    weights = copy_model(tiny_model, tmp_path)
    weights.with_suffix(missing).unlink()
    message = refused(weights)
    assert f"tiny{missing}" in message and "not found" in message


@pytest.mark.parametrize("garbage", [b"\x00\xff\xfe\x80 binary", b"{not json", b"", b"[]", b'"a string"',
                                     "spec-string", "spec-empty", "spec-bad-family"])
def test_garbage_card_is_refused(tiny_model, tmp_path, garbage):
    weights = copy_model(tiny_model, tmp_path)
    card_path = weights.with_suffix(".json")
    if isinstance(garbage, str):  # a well-formed card whose spec is wrong (the hash still matches)
        card = json.loads(card_path.read_text())
        card["spec"] = {"spec-string": "altzcnn", "spec-empty": {},
                        "spec-bad-family": {**card["spec"], "family": "no_such_family"}}[garbage]
        garbage = json.dumps(card).encode()
    card_path.write_bytes(garbage)
    assert "tiny" in refused(weights)


# --- guards: network and file writes -----------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Every way to reach the network raises and is recorded; the test fails if any was tried."""
    attempts: list[str] = []

    def refuse(name):
        def blocked(*args, **kwargs):
            attempts.append(f"{name}{args[1:2] if name.startswith('socket.') else args[:1]}")
            raise OSError(f"network access attempted in a test: {name}")
        return blocked

    for owner, attr in ((socket.socket, "connect"), (socket.socket, "connect_ex"), (socket, "create_connection"),
                        (socket, "getaddrinfo"), (socket, "gethostbyname"), (socket, "gethostbyname_ex")):
        monkeypatch.setattr(owner, attr, refuse(f"socket.{attr}"))
    yield attempts
    assert not attempts, f"network access attempted: {attempts}"


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_WRITE_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.truncate",
                 "os.chmod", "shutil.copyfile", "shutil.move", "shutil.rmtree", "tempfile.mkstemp",
                 "tempfile.mkdtemp"}
_recording: list[list[str]] = []  # the active recorder (at most one); audit hooks cannot be removed


def _audit(event: str, args: tuple) -> None:
    if not _recording:
        return
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (int(flags or 0) & _WRITE_FLAGS)
        if writing and isinstance(path, (str, bytes, os.PathLike)):
            _recording[0].append(f"open for writing {os.fsdecode(path)}")
    elif event == "os.mkdir" and os.path.exists(args[0]):
        return  # os.makedirs(..., exist_ok=True) on an existing folder: nothing is created
    elif event in _WRITE_EVENTS:
        _recording[0].append(f"{event} {args[0] if args else ''}")


sys.addaudithook(_audit)

# What the snapshots skip, and why:
# - __pycache__: bytecode Python writes when a module is first imported; code, never user data.
# - .git, .pytest_cache, .hypothesis, .ruff_cache, .mypy_cache: version control and tool caches
#   (the lead and other helpers use git while tests run).
# - .venv: installed packages; nothing a session does goes there (the audit hook would see it).
# - runs/, weights/: the background training job writes there; the tests read models from the
#   tiny model's own folder (snapshotted separately, with nothing skipped).
# - repo files with source/doc suffixes: other helpers edit code concurrently. A session's writes
#   (an uploaded picture, a volume, a temp file) would not have these suffixes, and the audit hook
#   above records every write this process makes, whatever its suffix.
_SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache", ".hypothesis", ".ruff_cache", ".mypy_cache", ".venv",
              "runs", "weights", "node_modules"}
_SOURCE_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".sh", ".txt", ".css", ".js"}
_ALLOWED_WRITES = ("__pycache__",)  # bytecode caches; see above


def snapshot(root: Path, skip_sources: bool) -> dict[str, int]:
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for name in names:
            path = os.path.join(folder, name)
            if skip_sources and os.path.splitext(name)[1] in _SOURCE_SUFFIXES:
                continue
            try:
                files[path] = os.stat(path).st_mtime_ns
            except OSError:
                pass
    return files


@pytest.fixture
def no_file_written(tmp_path, tiny_model, monkeypatch):
    """Fails the test if anything is written in the repo, the temp folder or the model folder."""
    temp = tmp_path / "tmp"  # a private temp folder, so other processes cannot disturb the check
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    roots = {ROOT: True, Path(tempfile.gettempdir()): False, tiny_model.parent: False}
    before = {root: snapshot(root, skip) for root, skip in roots.items()}
    writes: list[str] = []
    _recording.append(writes)
    try:
        yield
    finally:
        _recording.remove(writes)
    changed = []
    for root, skip in roots.items():
        after = snapshot(root, skip)
        changed += [p for p, t in after.items() if before[root].get(p) != t]
    assert not changed, f"files written during the session: {changed}"
    writes = [w for w in writes if not any(a in w for a in _ALLOWED_WRITES)]
    assert not writes, f"this process wrote: {writes}"


# --- a session, offline, leaving no file ---------------------------------------------------------


def _has_cam() -> bool:
    try:
        import mrivision.explain.cam  # noqa: F401  (written by another helper; may not exist yet)
    except ImportError:
        return False
    return True


def test_package_session_is_offline_and_writes_nothing(tiny_model, no_network, no_file_written):
    predictor = load_model(tiny_model)
    for name, data in (("upload.png", png_bytes()), ("volume.nii.gz", nifti_gz_bytes())):
        img = load_image(data, name=name)
        prediction = predictor.predict(img)
        assert prediction.label in predictor.class_names
        if _has_cam():
            heat = predictor.explain(img, "gradcam")
            assert heat.shape == img.shape and np.isfinite(heat).all()


def test_onnx_runtime_telemetry_is_off():
    """ONNX Runtime (the fast inference path) >= 1.29 writes files and uploads telemetry unless
    ORT_DISABLE_TELEMETRY is set before it is imported; importing mrivision sets it."""
    import mrivision  # noqa: F401

    assert os.environ.get("ORT_DISABLE_TELEMETRY") == "1"


_SESSION = textwrap.dedent("""
    import sys
    import cv2, numpy as np
    sys.path.insert(0, sys.argv[2])
    from synthetic import make_slice
    from mrivision import load_image, load_model
    predictor = load_model(sys.argv[1])
    ok, png = cv2.imencode(".png", (make_slice(2, np.random.default_rng(0)) * 255).astype(np.uint8))
    img = load_image(png.tobytes(), name="upload.png")
    for _ in range(2):
        print(predictor.predict(img).label)
    try:
        import mrivision.explain.cam
    except ImportError:
        pass
    else:
        print(predictor.explain(img, "gradcam").shape)
""")


def test_session_in_a_fresh_process_writes_nothing_anywhere(tiny_model, tmp_path):
    """Catches writes made by compiled libraries too (the audit hook sees only Python's): a
    session in a new process, with its own home, temp folder and working folder, leaves them
    empty. Allowed, as they hold nothing from the session: empty folders (importing torchvision
    makes $TMPDIR/torchinductor_$USER) and matplotlib's font list, which matplotlib builds once
    per user on first import (~/.cache/matplotlib/fontlist-*.json; here the home is new)."""
    weights = copy_model(tiny_model, tmp_path / "model")
    home, temp, work = (tmp_path / d for d in ("home", "tmp", "work"))
    for d in (home, temp, work):
        d.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ORT_", "PYTHONDONTWRITEBYTECODE"))}
    env.update(HOME=str(home), TMPDIR=str(temp), PYTHONDONTWRITEBYTECODE="1")
    model_before = snapshot(weights.parent, False)
    done = subprocess.run([sys.executable, "-c", _SESSION, str(weights), str(ROOT / "tests")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    written = [str(p) for d in (home, temp, work) for p in d.rglob("*") if not p.is_dir()
               and not p.match(str(home / ".cache/matplotlib/fontlist-*.json"))]
    assert not written, f"files written by the session: {written}"
    assert snapshot(weights.parent, False) == model_before


@pytest.mark.skipif(not APP.exists() or not APP_PAGES, reason="no Streamlit app yet")
def test_app_session_is_offline_writes_nothing_and_shows_names_as_text(tiny_model, monkeypatch, no_network,
                                                                       no_file_written):
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tiny_model.parent))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    predict = next((p for p in APP_PAGES if p.endswith("predict.py")), None)
    for page in APP_PAGES:
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if page == predict:
            at.file_uploader(key="predict_uploads").set_value(
                [(HTML_NAME, png_bytes(), "image/png"), ("volume.nii.gz", nifti_gz_bytes(), "application/gzip")])
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            assert_no_raw_html(at)


def assert_no_raw_html(at) -> None:
    """No element that renders HTML carries the uploaded name; some element shows it as text."""
    shown = []
    for kind in ("markdown", "caption", "html"):
        for element in at.get(kind):
            body = getattr(element, "value", "") or ""
            allows_html = kind == "html" or bool(getattr(getattr(element, "proto", None), "allow_html", False))
            assert not (allows_html and "onerror" in body), body
            shown.append(body)
    assert any("onerror" in str(b) for b in shown + [e.value for e in at.error] + [e.value for e in at.subheader]
               + [str(s.options) for s in at.selectbox]), "the uploaded file name is not shown anywhere"


# --- uploaded names are never rendered as HTML (static check) -------------------------------


def _static_text(node: ast.AST, constants: dict[str, bool]) -> bool:
    """True when `node` is text fixed in the source: literals, f-strings of literals, constants."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return all(_static_text(v.value if isinstance(v, ast.FormattedValue) else v, constants) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _static_text(node.left, constants) and _static_text(node.right, constants)
    if isinstance(node, ast.Name):
        return constants.get(node.id, False)
    return False


def html_calls_with_variables(source: str, filename: str = "<source>") -> list[str]:
    """Calls that render raw HTML (`unsafe_allow_html=True`, `st.html`, `components.html`) with
    anything but text fixed in the source."""
    tree = ast.parse(source, filename)
    constants = {}
    for stmt in tree.body:  # module-level NAME = "literal" assignments
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            constants[stmt.targets[0].id] = _static_text(stmt.value, constants)
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        unsafe = any(k.arg == "unsafe_allow_html" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                     for k in node.keywords)
        func = node.func
        raw_html = isinstance(func, ast.Attribute) and func.attr == "html"
        if not (unsafe or raw_html):
            continue
        texts = list(node.args) + [k.value for k in node.keywords if k.arg in ("body", "html")]
        if not all(_static_text(t, constants) for t in texts):
            problems.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:120]}")
    return problems


def test_html_check_finds_variables():
    bad = 'import streamlit as st\nst.markdown(f"<b>{name}</b>", unsafe_allow_html=True)\nst.html(name)\n'
    good = 'import streamlit as st\nCSS = "<style>x</style>"\nst.markdown(CSS, unsafe_allow_html=True)\n' \
           'st.markdown(name)\nst.markdown(name, unsafe_allow_html=False)\n'
    assert len(html_calls_with_variables(bad)) == 2
    assert html_calls_with_variables(good) == []


@pytest.mark.skipif(not APP_PAGES, reason="no app pages yet")
def test_app_never_renders_variables_as_html():
    problems = []
    for path in APP_SOURCES:
        if path.exists():
            problems += html_calls_with_variables(path.read_text(), str(path.relative_to(ROOT)))
    assert not problems, problems


# --- concurrency -------------------------------------------------------------------------------------


def test_threads_get_the_same_results_as_serial_calls(tiny_model):
    pytest.importorskip("mrivision.explain.cam")
    predictor = Predictor.load(tiny_model)
    rng = np.random.default_rng(21)
    images = [make_slice(k % 4, rng) for k in range(12)]
    serial = [(predictor.predict(im).probabilities, predictor.explain(im, "gradcam")) for im in images]
    start = threading.Barrier(8)

    def task(k: int):
        if k < 8:
            start.wait(timeout=60)
        i = k % len(images)
        if k % 3 == 2:  # some threads only predict while others explain (CAM hooks on the shared model)
            return i, predictor.predict(images[i]).probabilities, None
        return i, predictor.predict(images[i]).probabilities, predictor.explain(images[i], "gradcam")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(task, range(3 * len(images))))
    for i, probs, heat in results:
        want_probs, want_heat = serial[i]
        np.testing.assert_allclose([probs[c] for c in predictor.class_names],
                                   [want_probs[c] for c in predictor.class_names], atol=1e-5)
        if heat is not None:
            np.testing.assert_allclose(heat, want_heat, atol=1e-4)
