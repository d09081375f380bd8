"""The evaluated classifier as an MLflow model: pyfunc load and `mlflow models serve`."""

import json
import os
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pneumogan.classify.checkpoint import save_classifier
from pneumogan.classify.predictor import predict_proba
from pneumogan.serve.mlflow_model import log_classifier
from tests.conftest import make_images, tiny_classifier
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


def test_signature_is_a_uint8_image_batch_and_the_model_holds_no_pickle(logged):
    _, info, _, _, d = logged
    spec = info.signature.inputs.inputs[0]
    assert spec.type == np.dtype("uint8") and spec.shape == (-1, 28, 28)
    assert info.signature.outputs.input_names() == ["p_normal", "p_pneumonia"]
    files = {p.name for p in (d / "art").rglob("*") if p.is_file()}
    assert "mlflow_entry.py" in files and "clf.safetensors" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".pt"))]


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_the_same_probabilities(logged, tmp_path):
    clf, _, uri, images, _ = logged
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # uvicorn, by name
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/tiny-classifier/1"]
    cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    server = start(cmd, tmp_path / "serve.log", env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server, "mlflow models serve")
        body = json.dumps({"inputs": images.tolist()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
    finally:
        stop(server)
    got = [row["p_pneumonia"] for row in answer["predictions"]]
    np.testing.assert_allclose(got, predict_proba(clf, images, batch_size=8), rtol=0, atol=1e-6)
