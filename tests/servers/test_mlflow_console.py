"""A stage logging to an MLflow server keeps MLflow's chatter off its console."""

import importlib
import os
import shlex
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from pneumogan.data import medmnist
from tests.conftest import ROOT, tiny_classifier_file, tiny_params
from tests.servers.launch import mlflow_server

pytestmark = pytest.mark.slow
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
CHATTER = (
    "View run",  # a link per run closed, printed to stdout by MLflow's REST client
    "View experiment at",
    "Failed to resolve installed pip version",  # uv's venv has no pip
    "Downloading artifacts",  # a progress bar while the model is logged
    "Successfully registered model",  # what registered_model_name= prints
    "Created version",
)


def args(d, stage: str) -> list[str]:
    """The stage's dvc.yaml arguments, every path under `d`."""
    _, _, module, *rest = shlex.split(DVC["stages"][stage]["cmd"])
    return [module, *(a if a.startswith("--") else str(d / a) for a in rest)]


def test_evaluate_against_a_server_prints_none_of_mlflows_chatter(
    tmp_path, tiny_raw_dir, monkeypatch
):
    d = tmp_path / "work"
    d.mkdir()
    (d / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    monkeypatch.setenv(medmnist.DATA_DIR_ENV, str(tiny_raw_dir))
    for stage in ("check_params", "download", "split"):  # here, into the session's store
        module, *rest = args(d, stage)
        importlib.import_module(module).main(rest)
    tiny_classifier_file(d / "models/classifier.safetensors")
    db = SimpleNamespace(uri=f"sqlite:///{tmp_path / 'server.db'}", password="")
    with mlflow_server(db, tmp_path / "artifacts") as uri:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "MLFLOW_"))}
        env.update(MLFLOW_TRACKING_URI=uri, DVC_ROOT=str(d))
        out = subprocess.run(
            [sys.executable, "-m", *args(d, "evaluate")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log
    assert "MLflow model pneumogan-classifier version 1 registered" in log
    assert [c for c in CHATTER if c in log] == [], log
    assert len(log.splitlines()) <= 4, log
