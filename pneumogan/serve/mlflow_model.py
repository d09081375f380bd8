"""The evaluated classifier as an MLflow model: uint8 images in, P(normal) and P(pneumonia) out.

A pyfunc model around the pipeline's own checkpoint and code (the package travels inside the
model), so `mlflow.pyfunc.load_model` and `mlflow models serve` preprocess exactly as
`pneumogan predict` does. The signature takes a uint8 tensor N×S×S at the model's size S.

`publish` registers it behind a gate (a minimum validation AUC; never a study's runs), tags the
version with its validation AUC, and moves an alias (`champion`) to it only when it beats the
alias holder: serve `models:/<name>@<alias>`, not `latest`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import safetensors
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

import pneumogan
from pneumogan.classify.checkpoint import load_classifier
from pneumogan.classify.predictor import predict_proba

ENTRY = Path(__file__).with_name("mlflow_entry.py")  # runs at load: no pickle in the model
ARTIFACT = "checkpoint"  # the safetensors file inside the MLflow model
NAME = "classifier"  # the model's name inside its run
AUC_TAG = "val_auc"  # model-version tag: the validation AUC that the gate and the alias compare
# MLflow's own lines on registering (to stderr), which `publish` replaces with one of its own
REGISTRY_CHATTER = ("Successfully registered model", "Registered model", "Created version")


class _NoPipVersion(logging.Filter):
    """Drops MLflow's warning that pip is missing (uv venvs have none): the model's
    requirements are given in full, so pip's version matters to nobody."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to resolve installed pip version")


class ClassifierModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: rebuilt from the checkpoint artifact when the model loads."""

    def load_context(self, context: Any) -> None:
        self.clf = load_classifier(Path(context.artifacts[ARTIFACT]))

    def predict(
        self, context: Any, model_input: np.ndarray, params: dict | None = None
    ) -> pd.DataFrame:  # an ndarray hint: MLflow infers nothing from it, the signature rules
        images = np.asarray(model_input)
        if images.dtype != np.uint8:
            if images.size and (images.min() < 0 or images.max() > 255):
                raise ValueError("pixels must be in 0..255 (uint8 grayscale)")
            images = images.astype(np.uint8)
        p = predict_proba(self.clf, images, batch_size=256)
        return pd.DataFrame({"p_normal": 1.0 - p, "p_pneumonia": p})


def log_classifier(
    checkpoint: Path, example: np.ndarray, register_as: str | None = None
) -> Any:  # mlflow.models.model.ModelInfo
    """Log `checkpoint` as a pyfunc model in the active run (registered when a name is given,
    with no gate: the pipeline registers through `publish`).

    `example` (uint8, batch >= 2) becomes the input example and fixes the signature.
    """
    for noisy in ("mlflow.pyfunc", "mlflow.models", "mlflow.utils", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    pip_warning = logging.getLogger("mlflow.utils.environment")
    if not any(isinstance(f, _NoPipVersion) for f in pip_warning.filters):
        pip_warning.addFilter(_NoPipVersion())
    model = ClassifierModel()
    model.load_context(SimpleNamespace(artifacts={ARTIFACT: str(checkpoint)}))
    signature = infer_signature(example, model.predict(None, example))
    return mlflow.pyfunc.log_model(
        name=NAME,
        python_model=str(ENTRY),
        artifacts={ARTIFACT: str(checkpoint)},
        code_paths=[str(Path(pneumogan.__file__).parent)],
        signature=signature,
        input_example=example,
        registered_model_name=register_as,
        pip_requirements=[
            f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={np.__version__}",
            f"pandas=={pd.__version__}",
            f"safetensors=={safetensors.__version__}",
        ],
    )


def publish(
    model: Any,  # mlflow.models.model.ModelInfo, logged by log_classifier
    *,
    auc: float,
    name: str | None,
    min_auc: float,
    alias: str | None,
    study: str | None,
) -> str:
    """Register the logged `model` as a new version of `name` when it passes the gate: a
    name, not a study's run, a validation AUC of at least `min_auc`. The version is tagged with its
    AUC; `alias` moves to it only when that beats the holder's (a holder without the tag is
    beaten). Returns one line saying what happened, for the log."""
    if name is None:
        return "MLflow model logged, not registered: evaluate.register_as is null"
    if study is not None:
        return f"MLflow model logged, not registered: a run of study {study}"
    if not auc >= min_auc:  # NaN (a one-class test set) fails too
        return (
            f"MLflow model logged, not registered: validation AUC {auc:.4f} is below "
            f"evaluate.register_min_val_auc {min_auc:g}"
        )
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        version = mlflow.register_model(model.model_uri, name, tags={AUC_TAG: f"{auc:.6f}"})
    for line in said.getvalue().splitlines():  # anything but the chatter still shows
        if line.strip() and not line.startswith(REGISTRY_CHATTER):
            print(line, file=sys.stderr)
    line = f"MLflow model {name} version {version.version} registered (validation AUC {auc:.4f})"
    if alias is None:
        return line
    client = mlflow.MlflowClient()
    try:
        holder = client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no version holds the alias yet
        holder = None
    best = float(holder.tags.get(AUC_TAG, "-inf")) if holder is not None else float("-inf")
    if holder is not None and not auc > best:
        return f"{line}; @{alias} stays on version {holder.version} (validation AUC {best:.4f})"
    client.set_registered_model_alias(name, alias, version.version)
    if holder is None:
        return f"{line}; @{alias} set on it"
    return f"{line}; @{alias} moved to it from version {holder.version} (validation AUC {best:.4f})"
