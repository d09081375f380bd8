"""`pneumogan app`: the launcher's checks, and the app itself driven in a real browser.

The browser test starts Streamlit exactly as `launch` does, on a free localhost port, and
drives Debian's Chromium (`apt-get install chromium`) through Playwright: uploads, the
numbers `pneumogan predict` prints (to three decimals), the threshold marked on each bar, the
operating point's sensitivity and specificity with intervals, each upload shown at its own
size beside the network's input, Grad-CAM maps on one colour scale with a colour bar, a CSV
download without the case label, a bad file's error, the metrics' intervals, and a New
session that clears everything.
"""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pneumogan.serve import app, cli
from tests.conftest import make_xrays
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


def test_probabilities_show_three_decimals_never_a_certainty():
    assert [app.prob(p) for p in (0.123456, 0.5, 0.0004, 0.0, 0.99951, 1.0)] == [
        "0.123",
        "0.500",
        "< 0.001",
        "< 0.001",
        "> 0.999",
        "> 0.999",
    ]
    line = app.result_line("a_b.png", 0.98765432, "pneumonia")
    assert line == "a_b.png — P(normal) 0.012 · P(pneumonia) 0.988 · pneumonia"
    assert app.thr(0.358448) == "0.358" and app.thr(0.5) == "0.5"


@pytest.mark.parametrize(
    ("p", "threshold", "shown"),
    [
        (0.8, 0.358448, "0.800, at or above the threshold 0.358"),
        (0.5, 0.5, "0.500, at or above the threshold 0.5"),  # equal values may print equal
        (0.35831, 0.358448, "0.3583, below the threshold 0.3584"),
        (0.358448, 0.35831, "0.3584, at or above the threshold 0.3583"),
        (0.4996, 0.5, "0.4996, below the threshold 0.5000"),  # not "0.500 below 0.5"
        (0.03554, 0.0356, "0.0355, below the threshold 0.0356"),  # not "0.036 below 0.0356"
        (0.5 - 1e-12, 0.5, "0.499999999999, below the threshold 0.500000000000"),
        (0.0004, 0.002, "< 0.001, below the threshold 0.002"),
        (0.0004, 0.0003, "0.0004, at or above the threshold 0.0003"),  # not "< 0.001"
        (0.9996, 0.9995, "0.9996, at or above the threshold 0.9995"),  # not "> 0.999 ... 1"
        (0.9996, 0.99, "> 0.999, at or above the threshold 0.99"),
        (0.9996, 0.9997, "0.9996, below the threshold 0.9997"),  # not "> 0.999 below 1"
    ],
)
def test_a_probability_never_prints_equal_to_a_threshold_it_differs_from(p, threshold, shown):
    """Before: 'P(pneumonia) 0.358, below the threshold 0.358' (three digits each)."""
    assert app.call_text(p, threshold, "x") == f"P(pneumonia) {shown}: x"


def test_the_bar_marks_the_threshold():
    bar = app.bar_html(0.8, 0.358448, "pneumonia")
    assert 'class="pg-fill" style="width:80.00%' in bar
    assert 'data-threshold="0.358448"' in bar and "left:35.84%" in bar
    assert "threshold 0.358</div>" in bar
    assert 'aria-label="P(pneumonia) 0.800, at or above the threshold 0.358: pneumonia"' in bar


def test_the_operating_point_has_sensitivity_specificity_and_intervals():
    text = app.operating_point(METRICS, 0.5)
    assert text == (
        "At threshold 0.5, on the real test split (40 images): **Sensitivity 85.0%** of the "
        "pneumonia X-rays called pneumonia (CI 70.0%–95.0%); **Specificity 75.0%** of the "
        "normal X-rays called normal (CI 55.0%–90.0%)."
    )
    assert "95% CI 70.0%" in app.operating_point({**METRICS, "ci_level": 0.95}, 0.5)
    assert app.operating_point(METRICS, 0.4) is None  # scored at another threshold
    assert app.operating_point({"threshold": 0.5}, 0.5) is None


def test_the_results_csv_holds_no_label_nor_ground_truth():
    calls = [
        {"p_pneumonia": 0.25, "ood_score": 3.5, "gate": "pass", "label": "normal"},
        {"p_pneumonia": 0.5, "ood_score": 4.25, "gate": "pass", "label": "pneumonia"},
        {"p_pneumonia": 0.9, "ood_score": 80.0, "gate": "flagged", "label": None},
        {"p_pneumonia": 0.9, "ood_score": None, "gate": "absent", "label": "pneumonia"},
    ]
    text = app.results_csv(["a.png", "true_normal,b.png", "black.png", "old.png"], calls, 0.5)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        ["file", "p_pneumonia", "ood_score", "gate", "call", "threshold"],
        ["a.png", "0.250000", "3.5", "pass", "normal", "0.5"],
        ["true_normal,b.png", "0.500000", "4.25", "pass", "pneumonia", "0.5"],
        ["black.png", "0.900000", "80", "flagged", "", "0.5"],  # no call
        ["old.png", "0.900000", "", "absent", "pneumonia", "0.5"],
    ]


def test_a_flagged_image_says_why_it_gets_no_call():
    text = app.flag_text(81.25, 4.5)
    assert text.startswith("This image does not look like the chest X-rays the model learned")
    assert "score 81.25 is above the gate's threshold 4.5. No call is made" in text
    bar = app.bar_html(0.97, 0.5, app.NO_CALL)
    assert "background:#95a5a6" in bar and f": {app.NO_CALL}" in bar  # grey: no call


def test_grad_cam_states_its_shared_scale():
    bar = app.colour_bar_html(0.5, 0.125)
    assert 'data-top="0.5" data-peak="0.125"' in bar and "left:25.00%" in bar
    assert "linear-gradient(to right, rgb(0,0,4) 0.0%" in bar  # inferno, as the overlay
    assert "<span>0</span><span>0.5</span>" in bar
    assert app.cam_caption(0.125, 0.5, 3) == (
        "Grad-CAM, one scale for the 3 image(s) shown (top: their largest value); this map's "
        "peak: 25% of it"
    )
    assert "no evidence for pneumonia in any image" in app.cam_caption(0.0, 0.0, 2)


def test_importing_the_app_is_light():
    code = (
        "import sys, pneumogan.serve.app; print(sorted({'torch', 'streamlit'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_app_in_a_real_browser(tmp_path, gated_model_file, metrics_file):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")

    pics = tmp_path / "pics"
    pics.mkdir()
    model_file = gated_model_file  # fitted on X-ray-like images (make_xrays)
    rng = np.random.default_rng(3)
    images = list(make_xrays(np.array([0, 1]), rng))
    images.append(make_xrays(np.array([1]), rng, size=96)[0, 16:80])  # 96 wide, 64 high
    images.append(np.zeros((28, 28), np.uint8))  # flagged by the gate: no call
    good = [
        pics / "normal_case.png",
        pics / "pneumonia-case.png",
        pics / "wide scan.png",
        pics / "black.png",
    ]
    for path, image in zip(good, images, strict=True):
        Image.fromarray(image).save(path)
    bad = pics / "bad.png"
    bad.write_bytes(b"this is not an image")
    out = tmp_path / "pred.json"
    args = ["--model", str(model_file), "--metrics", str(metrics_file), "--json", str(out)]
    assert cli.run(["predict", *map(str, good), *args]) == 0
    expected = {
        Path(r["file"]).name: (r["p_pneumonia"], r["label"] or app.NO_CALL)
        for r in json.loads(out.read_text())["predictions"]
    }
    assert set(expected) == {p.name for p in good} and expected["black.png"][1] == app.NO_CALL

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
                drive(page, sync_api.expect, port, [*good, bad], expected, case, tmp_path)
            finally:
                browser.close()
    finally:
        stop(proc)
    assert not list(scratch.glob("pneumogan-upload-*")), "an upload was left on disk"
    assert case not in log.read_text(), "the case label reached the server's output"


def drive(page, expect, port, files, expected, case, tmp_path) -> None:
    page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
    expect(page.get_by_text(app.NOTE).first).to_be_visible(timeout=30_000)
    # the sidebar shows once the model has loaded (seconds on a busy machine)
    expect(page.get_by_text("(CI 0.850–0.950)").first).to_be_visible(timeout=60_000)
    uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    uploader.set_input_files([str(f) for f in files])

    n = len(expected)
    results = page.locator('[data-testid="stText"]').filter(has_text="P(pneumonia)")
    expect(results).to_have_count(n, timeout=30_000)
    texts = results.all_inner_texts()
    for name, (p, label) in expected.items():
        line = app.result_line(name, p, label)
        assert f"P(pneumonia) {p:.3f} · {label}" in line  # the tiny model is never that sure
        assert line in texts, (line, texts)
    assert not re.search(r"\d\.\d{4}", " ".join(texts)), "more than three decimals shown"
    errors = page.locator('[data-testid="stAlertContentError"]')
    expect(errors).to_have_count(1)
    expect(errors).to_contain_text("bad.png: not an image this reader knows")
    # the black image: flagged, with the reason, and no call
    flagged = page.locator('[class*="st-key-result_"]').filter(has_text="black.png")
    expect(flagged.get_by_text("Flagged: not like the training X-rays")).to_be_visible()
    expect(flagged.get_by_text("does not look like the chest X-rays the model")).to_be_visible()

    # the threshold is marked on each bar, where 0.5 lies on it, and named
    bars = page.locator(".pg-bar")
    expect(bars).to_have_count(n)
    for i in range(n):
        track = bars.nth(i).locator("> div").bounding_box()
        mark = bars.nth(i).locator(".pg-threshold")
        expect(mark).to_have_attribute("data-threshold", "0.5")
        box = mark.bounding_box()
        assert abs(box["x"] - (track["x"] + track["width"] / 2)) <= 2, (box, track)
        expect(bars.nth(i).locator(".pg-threshold-label")).to_have_text("threshold 0.5")
    # the operating point: sensitivity and specificity at that threshold, with intervals
    point = page.get_by_text("At threshold 0.5, on the real test split (40 images)")
    expect(point).to_contain_text("Sensitivity 85.0% of the pneumonia X-rays called pneumonia")
    expect(point).to_contain_text("(CI 70.0%–95.0%)")
    expect(point).to_contain_text("Specificity 75.0%")

    # each upload at its own size, beside the network's 28-px input (shown enlarged)
    for name, (width, height) in {"wide scan.png": (96, 64), "normal_case.png": (28, 28)}.items():
        result = page.locator('[class*="st-key-result_"]').filter(has_text=name)
        shown = result.locator('[data-testid="stImage"]')
        expect(shown).to_have_count(2)
        expect(result.get_by_text(f"uploaded: {width}×{height} px")).to_be_visible()
        expect(result.get_by_text("network input: 28×28 px, shown ×8")).to_be_visible()
        size = (
            shown.nth(0)
            .locator("img")
            .evaluate("i => [i.naturalWidth, i.naturalHeight, i.clientWidth, i.clientHeight]")
        )
        assert size == [width, height, width, height], (name, size)

    # Grad-CAM: one colour scale for every map, a colour bar under each, the scale stated
    page.get_by_text("Grad-CAM heatmap", exact=True).click()
    colour_bars = page.locator(".pg-colourbar")
    expect(colour_bars).to_have_count(n, timeout=60_000)
    tops = {colour_bars.nth(i).get_attribute("data-top") for i in range(n)}
    peaks = [float(colour_bars.nth(i).get_attribute("data-peak")) for i in range(n)]
    assert len(tops) == 1 and max(peaks) == pytest.approx(float(tops.pop()), rel=1e-4)
    expect(page.get_by_text(f"one scale for the {n} image(s) shown")).to_have_count(n)

    box = page.get_by_role("textbox", name="Case label")
    box.fill(case)
    box.press("Enter")
    expect(box).to_have_value(case)
    expect(results).to_have_count(n, timeout=30_000)

    # the session's results as CSV: file, P(pneumonia), call, threshold; no case label
    with page.expect_download(timeout=30_000) as info:
        page.get_by_role("button", name="Download results (CSV)").click()
    download = info.value
    assert download.suggested_filename == app.CSV_NAME
    saved = tmp_path / "download.csv"
    download.save_as(saved)
    text = saved.read_text()
    assert case not in text and "4711" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == app.CSV_COLUMNS
    got = {
        r["file"]: (float(r["p_pneumonia"]), r["call"] or app.NO_CALL, r["threshold"]) for r in rows
    }
    assert set(got) == set(expected)
    for name, (p, label) in expected.items():
        assert got[name][1:] == (label, "0.5") and got[name][0] == pytest.approx(p, abs=1e-6)
    assert {r["file"]: r["gate"] for r in rows}["black.png"] == "flagged"

    page.get_by_role("button", name="New session").click()
    expect(results).to_have_count(0, timeout=15_000)
    expect(errors).to_have_count(0)
    expect(page.get_by_role("textbox", name="Case label")).to_have_value("")
    expect(page.get_by_text(app.NOTE).first).to_be_visible()
