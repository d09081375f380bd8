"""The evaluated classifier as an MLflow model: uint8 images in, P(normal) and P(pneumonia) out,
and, for a checkpoint with an input gate, the gate's score (`ood_score`) and decision
(`ood_flag`: true when the image does not look like the training X-rays).

A pyfunc model around the pipeline's own checkpoint and code (the package travels inside the
model), so `mlflow.pyfunc.load_model` and `mlflow models serve` preprocess exactly as
`pneumogan predict` does. It takes 8-bit grayscale images N×S×S at the model's size S, integers
0..255, and refuses anything else (floats, other sizes, values out of range) with a message
that says what to send and never repeats the pixels; see `pixels`.

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
from mlflow.models import ModelSignature, infer_signature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

import pneumogan
from pneumogan.classify.checkpoint import load_classifier
from pneumogan.classify.predictor import predict

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


class PixelsRefused(MlflowException):
    """An input the model refuses: HTTP 400 from `mlflow models serve`, with this message only.

    The scoring server rewrites the message of any MlflowException raised in `predict` to
    "Failed to predict data '<the payload>'..." and answers any other exception with a generic
    "unexpected error": `message` ignores writes after the first, so the client reads ours,
    which names what to send and holds no pixel value.
    """

    def __init__(self, message: str) -> None:
        self._said = message
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._said

    @message.setter
    def message(self, _: str) -> None:
        pass  # the server's rewrite, payload and all, lands nowhere


def pixels(model_input: Any, size: int) -> np.ndarray:
    """`model_input` as uint8 N×size×size, or PixelsRefused saying what to send.

    The model's signature has no input schema (see `log_classifier`), so this is the only
    check: integers 0..255 of any integer dtype (JSON numbers arrive as int64), never floats,
    not even whole ones (a float payload is most likely scaled to 0..1).
    """
    want = f"send 8-bit grayscale images, integers 0..255, shape (N, {size}, {size})"
    if isinstance(model_input, np.ndarray):
        images = model_input
    else:  # a list, a DataFrame: whatever numpy makes of it
        try:
            images = np.asarray(model_input)
        except ValueError:  # nested lists of unequal lengths
            raise PixelsRefused(f"images of unequal sizes: {want}") from None
    if images.size and images.dtype != np.uint8:  # (an empty list is float64 to numpy)
        if not np.issubdtype(images.dtype, np.integer):
            what = "floats" if np.issubdtype(images.dtype, np.floating) else images.dtype.name
            raise PixelsRefused(f"pixels must be integers, not {what}: {want}")
        if images.min() < 0 or images.max() > 255:
            raise PixelsRefused(f"pixels must be in 0..255: {want}")
    if images.ndim != 3 or images.shape[1:] != (size, size):
        shape = tuple(int(n) for n in images.shape)
        raise PixelsRefused(f"expected images of shape (N, {size}, {size}), received {shape}")
    return images.astype(np.uint8, copy=False)


class ClassifierModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: rebuilt from the checkpoint artifact when the model loads."""

    def load_context(self, context: Any) -> None:
        self.clf = load_classifier(Path(context.artifacts[ARTIFACT]))

    def predict(
        self, context: Any, model_input: np.ndarray, params: dict | None = None
    ) -> pd.DataFrame:  # an ndarray hint: MLflow infers nothing from it, `pixels` checks
        images = pixels(model_input, self.clf.transform.size)
        out = predict(self.clf, images, batch_size=256)
        frame = {"p_normal": 1.0 - out.p, "p_pneumonia": out.p}
        if out.score is not None:  # a checkpoint older than the gate answers without it
            frame.update(ood_score=out.score, ood_flag=out.flagged)
        return pd.DataFrame(frame)


def metadata(clf: Any) -> dict[str, Any]:
    """The MLmodel's `metadata`: what the model takes, and its gate's threshold (if any)."""
    size = clf.transform.size
    out: dict[str, Any] = {
        "input": f"uint8 grayscale images, shape (N, {size}, {size}), integers 0..255",
        "image_size": size,
    }
    if clf.gate is not None:
        out["gate"] = {
            "method": clf.gate.info["method"],
            "threshold": clf.gate.threshold,
            "ood_flag": "true when ood_score is above the threshold: the image does not look "
            "like the chest X-rays the model learned from",
        }
    return out


def log_classifier(
    checkpoint: Path, example: np.ndarray, register_as: str | None = None
) -> Any:  # mlflow.models.model.ModelInfo
    """Log `checkpoint` as a pyfunc model in the active run (registered when a name is given,
    with no gate: the pipeline registers through `publish`).

    `example` (uint8, batch >= 2) becomes the input example. The signature gives the outputs
    and no input schema, on purpose: MLflow checks a tensor's dtype exactly (a uint8 tensor
    spec refuses every other dtype in `predict`, with the data in its message) and the scoring
    server casts JSON numbers to that dtype before the model sees them (0.5 becomes 0, a black
    image, silently). So `pixels` checks instead, and the MLmodel's metadata states the input.
    """
    for noisy in ("mlflow.pyfunc", "mlflow.models", "mlflow.utils", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    pip_warning = logging.getLogger("mlflow.utils.environment")
    if not any(isinstance(f, _NoPipVersion) for f in pip_warning.filters):
        pip_warning.addFilter(_NoPipVersion())
    model = ClassifierModel()
    model.load_context(SimpleNamespace(artifacts={ARTIFACT: str(checkpoint)}))
    outputs = infer_signature(example, model.predict(None, example)).outputs
    return mlflow.pyfunc.log_model(
        name=NAME,
        python_model=str(ENTRY),
        artifacts={ARTIFACT: str(checkpoint)},
        code_paths=[str(Path(pneumogan.__file__).parent)],
        signature=ModelSignature(outputs=outputs),
        input_example=example,
        metadata=metadata(model.clf),
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
