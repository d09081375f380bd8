"""Registration of the evaluated classifier behind a gate, and the alias that moves only up."""

import logging

import mlflow
import numpy as np
import pytest

from pneumogan.serve.mlflow_model import AUC_TAG, log_classifier, publish
from tests.conftest import make_images, tiny_classifier_file

NAME = "gated-classifier"


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny classifier logged (not registered) in a throw-away SQLite store; its client."""
    d = tmp_path_factory.mktemp("registration")
    mp = pytest.MonkeyPatch()
    uri = f"sqlite:///{d / 'mlflow.db'}"
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("gate", artifact_location=(d / "art").as_uri())
    images = make_images(np.arange(4) % 2, np.random.default_rng(0))
    with mlflow.start_run(experiment_id=experiment):
        model = log_classifier(tiny_classifier_file(d / "clf.safetensors"), images[:2])
    yield model, mlflow.MlflowClient(uri)
    mp.undo()


def versions(client) -> dict[str, str]:
    return {str(v.version): v.tags[AUC_TAG] for v in client.search_model_versions(f"name='{NAME}'")}


def test_logging_registers_nothing_and_says_nothing_of_pip(logged):
    model, client = logged
    assert model.registered_model_version is None
    assert client.search_registered_models(f"name='{NAME}'") == []
    # MLflow's warning that uv's venv has no pip is dropped; its other warnings are not.
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("mlflow.utils.environment")
    logger.addHandler(handler)
    try:
        logger.warning("Failed to resolve installed pip version. ``pip`` will be added")
        logger.warning("something else")
    finally:
        logger.removeHandler(handler)
    assert seen == ["something else"]


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"name": None}, "not registered: evaluate.register_as is null"),
        ({"study": "balancing"}, "not registered: a run of study balancing"),
        (
            {"auc": 0.85},
            "not registered: validation AUC 0.8500 is below evaluate.register_min_val_auc 0.9",
        ),
        ({"auc": float("nan")}, "not registered: validation AUC nan is below"),
    ],
)
def test_the_gate_keeps_out_what_should_not_be_served(logged, changes, said):
    model, client = logged
    before = versions(client) if client.search_registered_models(f"name='{NAME}'") else {}
    kwargs = {"auc": 0.95, "name": NAME, "min_auc": 0.9, "alias": "champion", "study": None}
    assert said in publish(model, **{**kwargs, **changes})
    after = versions(client) if client.search_registered_models(f"name='{NAME}'") else {}
    assert after == before


def test_the_alias_moves_only_to_a_better_version(logged, capsys):
    model, client = logged

    def register(auc: float) -> str:
        return publish(model, auc=auc, name=NAME, min_auc=0.9, alias="champion", study=None)

    def champion() -> str:
        return str(client.get_model_version_by_alias(NAME, "champion").version)

    assert register(0.95) == (
        f"MLflow model {NAME} version 1 registered (validation AUC 0.9500); @champion set on it"
    )
    assert register(0.97).endswith("@champion moved to it from version 1 (validation AUC 0.9500)")
    assert champion() == "2"
    assert register(0.93).endswith("@champion stays on version 2 (validation AUC 0.9700)")
    assert register(0.97).endswith("@champion stays on version 2 (validation AUC 0.9700)")  # a tie
    assert champion() == "2"
    assert versions(client) == {"1": "0.950000", "2": "0.970000", "3": "0.930000", "4": "0.970000"}
    no_alias = publish(model, auc=0.99, name=NAME, min_auc=0.9, alias=None, study=None)
    assert no_alias == f"MLflow model {NAME} version 5 registered (validation AUC 0.9900)"
    assert champion() == "2"
    # A holder without the tag (an alias set by hand) is beaten by any version that passes.
    client.delete_model_version_tag(NAME, "2", AUC_TAG)
    assert register(0.91).endswith("@champion moved to it from version 2 (validation AUC -inf)")
    assert champion() == "6"
    # MLflow's own "Successfully registered" / "Created version" lines are not printed.
    out = capsys.readouterr()
    assert "registered model" not in (out.out + out.err).lower(), out


def test_the_champion_is_what_models_at_alias_names(logged, tmp_path):
    model, client = logged
    assert client.get_model_version_by_alias(NAME, "champion").run_id == model.run_id
    local = mlflow.artifacts.download_artifacts(f"models:/{NAME}@champion", dst_path=tmp_path)
    assert (tmp_path / "MLmodel").is_file() or any(tmp_path.rglob("MLmodel")), local
