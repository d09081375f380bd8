"""`pneumogan app`: the launcher's checks, and the app itself driven in a real browser.

The browser test starts Streamlit exactly as `launch` does, on a free localhost port, and
drives Debian's Chromium (`apt-get install chromium`) through Playwright: uploads, the
numbers `pneumogan predict` prints, a bad file's error, the metrics' intervals, and a New
session that clears everything.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pneumogan.serve import app, cli
from tests.conftest import make_images
from tests.servers.launch import free_port, start, stop, wait_for_http

CHROMIUM = "/usr/bin/chromium"
METRICS = {
    "n": 40,
    "threshold": 0.5,
    "auc": 0.9,
    "accuracy": 0.8,
    "sensitivity": 0.85,
    "specificity": 0.75,
    "at_val_threshold": {"threshold": 0.4},
    "ci": {
        "auc": {"low": 0.85, "high": 0.95},
        "accuracy": {"low": 0.7, "high": 0.875},
        "sensitivity": {"low": 0.7, "high": 0.95},
        "specificity": {"low": 0.55, "high": 0.9},
    },
}


@pytest.fixture
def metrics_file(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(METRICS))
    return path


def test_launch_refuses_a_missing_model_or_metrics(tmp_path, model_file, metrics_file, capsys):
    assert app.launch(tmp_path / "none.safetensors", metrics_file, 8501) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.safetensors: model not found" in err
    assert app.launch(model_file, tmp_path / "none.json", 8501) == 2
    assert "none.json: metrics not found" in capsys.readouterr().err
    assert cli.run(["app", "--model", str(tmp_path / "none.safetensors")]) == 2


def test_command_is_local_only_without_usage_stats(model_file, metrics_file):
    cmd = app.command(model_file, metrics_file, 8765)
    flags = dict(zip(cmd[5:-5:2], cmd[6:-5:2], strict=True))
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(Path(app.__file__))]
    assert flags == {
        "--server.address": "127.0.0.1",
        "--server.port": "8765",
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
        "--client.toolbarMode": "minimal",
    }
    assert cmd[-5:] == ["--", "--model", str(model_file), "--metrics", str(metrics_file)]


def test_importing_the_app_is_light():
    code = (
        "import sys, pneumogan.serve.app; print(sorted({'torch', 'streamlit'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_app_in_a_real_browser(tmp_path, model_file, metrics_file):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")

    pics = tmp_path / "pics"
    pics.mkdir()
    images = make_images(np.array([0, 1]), np.random.default_rng(3))
    good = [pics / "normal_case.png", pics / "pneumonia-case.png"]
    for path, image in zip(good, images, strict=True):
        Image.fromarray(image).save(path)
    bad = pics / "bad.png"
    bad.write_bytes(b"this is not an image")
    out = tmp_path / "pred.json"
    args = ["--model", str(model_file), "--metrics", str(metrics_file), "--json", str(out)]
    assert cli.run(["predict", *map(str, good), *args]) == 0
    expected = {
        Path(r["file"]).name: (f"{r['p_normal']:.6f}", f"{r['p_pneumonia']:.6f}", r["label"])
        for r in json.loads(out.read_text())["predictions"]
    }
    assert set(expected) == {p.name for p in good}

    port, scratch, log = free_port(), tmp_path / "tmp", tmp_path / "streamlit.log"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}  # where the uploads are briefly written
    case = "case 4711 Doe"
    # the app's output goes to `log`, read at the end
    proc = start(app.command(model_file, metrics_file, port), log, env=env, cwd=tmp_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/_stcore/health", proc, "streamlit", 60)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                drive(page, sync_api.expect, port, [*good, bad], expected, case)
            finally:
                browser.close()
    finally:
        stop(proc)
    assert not list(scratch.glob("pneumogan-upload-*")), "an upload was left on disk"
    assert case not in log.read_text(), "the case label reached the server's output"


def drive(page, expect, port, files, expected, case) -> None:
    page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
    expect(page.get_by_text(app.NOTE).first).to_be_visible(timeout=30_000)
    # the sidebar shows once the model has loaded (seconds on a busy machine)
    expect(page.get_by_text("(CI 0.850–0.950)").first).to_be_visible(timeout=60_000)
    uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    uploader.set_input_files([str(f) for f in files])

    results = page.locator('[data-testid="stText"]').filter(has_text="P(pneumonia)")
    expect(results).to_have_count(2, timeout=30_000)
    texts = results.all_inner_texts()
    for name, (p_normal, p_pneumonia, label) in expected.items():
        line = app.result_line(name, float(p_pneumonia), label)
        assert f"P(normal) {p_normal} · P(pneumonia) {p_pneumonia} · {label}" in line
        assert line in texts, (line, texts)
    errors = page.locator('[data-testid="stAlertContentError"]')
    expect(errors).to_have_count(1)
    expect(errors).to_contain_text("bad.png: not an image this reader knows")

    box = page.get_by_role("textbox", name="Case label")
    box.fill(case)
    box.press("Enter")
    expect(box).to_have_value(case)
    page.get_by_role("button", name="New session").click()
    expect(results).to_have_count(0, timeout=15_000)
    expect(errors).to_have_count(0)
    expect(page.get_by_role("textbox", name="Case label")).to_have_value("")
    expect(page.get_by_text(app.NOTE).first).to_be_visible()
