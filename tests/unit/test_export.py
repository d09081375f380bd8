"""The ONNX export: one graph with the preprocessing inside, a dynamic batch, same bytes twice."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pneumogan.classify.predictor import predict_proba
from pneumogan.core.errors import DataError
from pneumogan.serve import cli
from pneumogan.serve.onnx_export import export_onnx, parity
from pneumogan.serve.onnx_runtime import load_onnx
from tests.conftest import ROOT, make_images, tiny_classifier


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    clf = tiny_classifier()
    d = tmp_path_factory.mktemp("onnx")
    export_onnx(clf, d / "a.onnx", opset=18)
    export_onnx(clf, d / "b.onnx", opset=18)
    return clf, d


def test_two_exports_are_the_same_bytes(exported):
    _, d = exported
    assert (d / "a.onnx").read_bytes() == (d / "b.onnx").read_bytes()


def test_the_graph_names_no_path_of_the_checkout_it_came_from(exported):
    """A clean clone elsewhere exports the same bytes: no absolute source path in the file."""
    _, d = exported
    data = (d / "a.onnx").read_bytes()
    package = ROOT / "pneumogan"
    assert str(package).encode() not in data and b"onnx_export.py" not in data


@pytest.mark.parametrize("n", [1, 3, 40])
def test_any_batch_size_agrees_with_torch(exported, n):
    clf, d = exported
    images = make_images(np.arange(n) % 2, np.random.default_rng(n))
    p_onnx = load_onnx(d / "a.onnx").predict_proba(images, batch_size=16)
    p_torch = predict_proba(clf, images, batch_size=16)
    assert p_onnx.shape == (n,)
    np.testing.assert_allclose(p_onnx, p_torch, rtol=0, atol=1e-5)


def test_the_graph_describes_itself(exported):
    _, d = exported
    graph = load_onnx(d / "a.onnx")
    assert graph.size == 28
    assert graph.meta["labels"] == {"0": "normal", "1": "pneumonia"}
    assert graph.meta["config"]["arch"] == "resnet_small"
    with pytest.raises(DataError, match="built for 28×28"):
        graph.predict_proba(np.zeros((2, 64, 64), np.uint8), batch_size=4)


def test_parity_counts_label_flips():
    got = parity(np.array([0.1, 0.49, 0.9]), np.array([0.1, 0.51, 0.9]), threshold=0.5)
    assert got["label_flips"] == 1 and got["n"] == 3
    assert got["max_abs_diff"] == pytest.approx(0.02)
    assert got["max_abs_diff_ppm"] == pytest.approx(20_000)


def test_a_sub_micro_difference_shows_in_dvc_metrics_diffs_five_decimals():
    """DVC rounds metrics to five decimals: 2.4e-07 against 5.7e-07 read 0.0 and 0.0."""
    a = parity(np.array([0.5]), np.array([0.5 + 2.4e-07]), threshold=0.5)["max_abs_diff_ppm"]
    b = parity(np.array([0.5]), np.array([0.5 + 5.7e-07]), threshold=0.5)["max_abs_diff_ppm"]
    assert (round(a, 5), round(b, 5)) == (pytest.approx(0.24), pytest.approx(0.57))


@pytest.mark.parametrize("content", [b"", b"not onnx at all"])
def test_a_bad_onnx_file_names_the_stage_to_rerun(tmp_path, content):
    (tmp_path / "bad.onnx").write_bytes(content)
    with pytest.raises(DataError, match=r"dvc repro -f export"):
        load_onnx(tmp_path / "bad.onnx")
    with pytest.raises(DataError, match="not found"):
        load_onnx(tmp_path / "missing.onnx")


def test_predict_onnx_runs_without_importing_torch(exported, tmp_path):
    _, d = exported
    image = make_images(np.array([1]), np.random.default_rng(0))[0]
    Image.fromarray(image).save(tmp_path / "x.png")
    code = (
        "import sys; from pneumogan.serve import cli; "
        f"rc = cli.run(['predict', '--onnx', '--model', {str(d / 'a.onnx')!r}, "
        f"'--threshold', '0.5', '--json', {str(tmp_path / 'p.json')!r}, "
        f"{str(tmp_path / 'x.png')!r}]); "
        "print(rc, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-2:] == ["0", "False"], out.stdout + out.stderr
    assert len(json.loads((tmp_path / "p.json").read_text())["predictions"]) == 1


def test_onnx_with_cam_is_refused(exported, tmp_path, capsys):
    _, d = exported
    argv = ["predict", "--onnx", "--model", str(d / "a.onnx"), "--cam", str(tmp_path), "x.png"]
    assert cli.run(argv) == 2
    assert "--cam needs the torch checkpoint" in capsys.readouterr().err
