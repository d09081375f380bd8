"""The evaluated classifier as an MLflow model: uint8 images in, P(normal) and P(pneumonia) out.

A pyfunc model around the pipeline's own checkpoint and code (the package travels inside the
model), so `mlflow.pyfunc.load_model` and `mlflow models serve` preprocess exactly as
`pneumogan predict` does. The signature takes a uint8 tensor N×S×S at the model's size S.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import safetensors
import torch
from mlflow.models import infer_signature

import pneumogan
from pneumogan.classify.checkpoint import load_classifier
from pneumogan.classify.predictor import predict_proba

ENTRY = Path(__file__).with_name("mlflow_entry.py")  # runs at load: no pickle in the model
ARTIFACT = "checkpoint"  # the safetensors file inside the MLflow model
NAME = "classifier"  # the model's name inside its run


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
    checkpoint: Path, example: np.ndarray, register_as: str | None
) -> Any:  # mlflow.models.model.ModelInfo
    """Log `checkpoint` as a pyfunc model in the active run (registered when a name is given).

    `example` (uint8, batch >= 2) becomes the input example and fixes the signature.
    """
    for noisy in ("mlflow.pyfunc", "mlflow.models", "mlflow.utils", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
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
