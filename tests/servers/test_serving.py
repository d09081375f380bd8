"""The evaluated classifier as an MLflow model: pyfunc load and `mlflow models serve`."""

import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from pneumogan.classify.checkpoint import save_classifier
from pneumogan.classify.predictor import predict, predict_proba
from pneumogan.serve.mlflow_model import log_classifier
from tests.conftest import make_images, tiny_classifier, tiny_gated_classifier, xray_split
from tests.servers.launch import free_port, start, stop, wait_for_http


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny classifier logged and registered in a throw-away MLflow store."""
    clf = tiny_classifier()
    d = tmp_path_factory.mktemp("serving")
    save_classifier(d / "clf.safetensors", clf)
    uri = f"sqlite:///{d / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("serving", artifact_location=(d / "art").as_uri())
    images = make_images(np.arange(5) % 2, np.random.default_rng(3))
    with mlflow.start_run(experiment_id=experiment):
        info = log_classifier(d / "clf.safetensors", images[:2], "tiny-classifier")
    return clf, info, uri, images, d


def test_pyfunc_model_predicts_what_the_checkpoint_does(logged):
    clf, info, uri, images, _ = logged
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/tiny-classifier/1")
    out = model.predict(images)
    want = predict_proba(clf, images, batch_size=8)
    np.testing.assert_allclose(out["p_pneumonia"], want, rtol=0, atol=1e-7)
    np.testing.assert_allclose(out["p_normal"], 1 - want, rtol=0, atol=1e-7)
    assert info.registered_model_version == 1


def test_signature_gives_the_outputs_the_metadata_the_input_and_the_model_holds_no_pickle(
    logged,
):
    _, info, _, _, d = logged
    # no input schema: MLflow would cast JSON floats to uint8 (0.5 -> 0) before the model saw them
    assert info.signature.inputs is None
    assert info.signature.outputs.input_names() == ["p_normal", "p_pneumonia"]
    assert info.metadata["image_size"] == 28
    assert info.metadata["input"] == "uint8 grayscale images, shape (N, 28, 28), integers 0..255"
    files = {p.name for p in (d / "art").rglob("*") if p.is_file()}
    assert "mlflow_entry.py" in files and "clf.safetensors" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".pt"))]


def test_a_gated_model_answers_the_gates_score_and_decision(tmp_path):
    """A checkpoint with an input gate: two more columns, the predictor's own score and
    decision, and the threshold in the MLmodel's metadata."""
    clf = tiny_gated_classifier()
    save_classifier(tmp_path / "gated.safetensors", clf)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("gated", artifact_location=(tmp_path / "art").as_uri())
    rng = np.random.default_rng(4)
    images = np.concatenate([xray_split(6, rng)[0], np.zeros((1, 28, 28), np.uint8)])
    with mlflow.start_run(experiment_id=experiment):
        info = log_classifier(tmp_path / "gated.safetensors", images[:2])
    columns = ["p_normal", "p_pneumonia", "ood_score", "ood_flag"]
    assert info.signature.outputs.input_names() == columns
    assert info.metadata["gate"]["threshold"] == clf.gate.threshold
    out = mlflow.pyfunc.load_model(info.model_uri).predict(images)
    want = predict(clf, images, batch_size=8)
    assert list(out.columns) == columns
    np.testing.assert_allclose(out["p_pneumonia"], want.p, rtol=0, atol=1e-7)
    np.testing.assert_allclose(out["ood_score"], want.score, rtol=1e-6)
    assert out["ood_flag"].tolist() == want.flagged.tolist() and out["ood_flag"].iloc[-1]


WANT = "send 8-bit grayscale images, integers 0..255, shape (N, 28, 28)"


def echoes(text: str, payload: np.ndarray, run: int = 3) -> bool:
    """Whether `text` holds `run` consecutive numbers of `payload`, in whatever format (a JSON
    list, numpy's repr): how the old error messages repeated the request."""
    said = np.array([float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)])
    if said.size < run:
        return False
    flat = np.lib.stride_tricks.sliding_window_view(payload.ravel().astype(float), run)
    return any(
        np.isclose(flat, window, rtol=0, atol=1e-6).all(axis=1).any()
        for window in np.lib.stride_tricks.sliding_window_view(said, run)
    )


def test_echoes_finds_a_payload_in_numpy_and_json_form(logged):
    images = logged[3]
    assert echoes(f"Failed to predict data '{images}'", images)
    assert echoes(json.dumps(images.tolist())[:60], images)
    assert echoes(str(images / 255.0), images / 255.0)
    assert not echoes(f"expected images of shape (N, 28, 28), received {images.shape}", images)


def refusal(model, images) -> str:
    with pytest.raises(MlflowException) as caught:
        model.predict(images)
    message = caught.value.message
    assert caught.value.get_http_status_code() == 400
    assert not echoes(message, images) and len(message) < 200, message
    return message


def test_pyfunc_model_refuses_floats_saying_what_to_send(logged):
    _, _, uri, images, _ = logged
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/tiny-classifier/1")
    for floats in (images / 255.0, images.astype(np.float32)):  # scaled to 0..1, or whole
        assert refusal(model, floats) == f"pixels must be integers, not floats: {WANT}"


def test_pyfunc_model_refuses_a_wrong_size_giving_both_shapes_only(logged):
    _, _, uri, images, _ = logged
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/tiny-classifier/1")
    small = np.ascontiguousarray(images[:, :20, :20])
    assert refusal(model, small) == "expected images of shape (N, 28, 28), received (5, 20, 20)"
    assert refusal(model, images[0]) == "expected images of shape (N, 28, 28), received (28, 28)"


def test_pyfunc_model_refuses_pixels_out_of_range_and_takes_any_integer_dtype(logged):
    clf, _, uri, images, _ = logged
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/tiny-classifier/1")
    for bad in (256, -1):
        wide = images.astype(np.int64)
        wide[1, 4, 7] = bad
        assert refusal(model, wide) == f"pixels must be in 0..255: {WANT}"
    out = model.predict(images.astype(np.int64))  # what JSON integers parse to
    want = predict_proba(clf, images, batch_size=8)
    np.testing.assert_allclose(out["p_pneumonia"], want, rtol=0, atol=1e-7)


def post(port: int, payload: dict) -> tuple[int, str]:
    """POST `payload` as JSON to the server's /invocations: its status and body."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


@pytest.mark.slow
def test_mlflow_models_serve_answers_integers_and_refuses_the_rest(logged, tmp_path):
    clf, _, uri, images, _ = logged
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # uvicorn, by name
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/tiny-classifier/1"]
    cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    server = start(cmd, tmp_path / "serve.log", env=env)
    wide = images.astype(np.int64)
    wide[1, 4, 7] = 256
    small = np.ascontiguousarray(images[:, :20, :20])
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server, "mlflow models serve")
        answered = post(port, {"inputs": images.tolist()})
        floats = post(port, {"inputs": (images / 255.0).tolist()})
        whole_floats = post(port, {"inputs": images.astype(float).tolist()})
        too_bright = post(port, {"inputs": wide.tolist()})
        wrong_size = post(port, {"inputs": small.tolist()})
    finally:
        stop(server)
    status, body = answered
    assert status == 200, body
    got = [row["p_pneumonia"] for row in json.loads(body)["predictions"]]
    np.testing.assert_allclose(got, predict_proba(clf, images, batch_size=8), rtol=0, atol=1e-6)
    wrong = []  # every refusal checked, so that a failure lists all that went wrong
    for name, (status, body), sent, message in [
        ("floats", floats, images / 255.0, f"pixels must be integers, not floats: {WANT}"),
        ("whole floats", whole_floats, images, f"pixels must be integers, not floats: {WANT}"),
        ("256", too_bright, wide, f"pixels must be in 0..255: {WANT}"),
        ("20 px", wrong_size, small, "expected images of shape (N, 28, 28), received (5, 20, 20)"),
    ]:
        if status != 400 or len(body) > 300 or echoes(body, sent):
            wrong.append(f"{name}: {status} {body[:200]}")
        elif json.loads(body)["message"] != message:
            wrong.append(f"{name}: {body}")
    assert not wrong, "\n".join(wrong)
