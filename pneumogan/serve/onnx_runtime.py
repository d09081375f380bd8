"""The exported classifier run by onnxruntime: numpy in, P(pneumonia) out, no torch imported.

The ONNX graph (written by the `export` stage, `pneumogan.serve.onnx_export`) takes uint8 pixels
N×S×S and holds the pipeline's whole preprocessing (the checkpoint's fixed pixel map) and
the final sigmoid, so a consumer needs only images at the model's size. Its description
(JSON under the `pneumogan` metadata key) names the size, the labels and the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from pneumogan.core.errors import DataError

META_KEY = "pneumogan"
INPUT, OUTPUT = "pixels", "p_pneumonia"


@dataclass
class OnnxClassifier:
    session: Any  # onnxruntime.InferenceSession
    size: int  # image side the graph takes, in px
    meta: dict[str, Any]

    def predict_proba(self, images: np.ndarray, *, batch_size: int) -> np.ndarray:
        """P(pneumonia) for each uint8 image (N×size×size)."""
        if images.ndim != 3 or images.shape[1:] != (self.size, self.size):
            raise DataError(
                f"images of shape {images.shape[1:]} for a model built for "
                f"{self.size}×{self.size} px"
            )
        pixels = np.ascontiguousarray(images, dtype=np.uint8)
        out = [
            self.session.run([OUTPUT], {INPUT: pixels[i : i + batch_size]})[0]
            for i in range(0, len(pixels), batch_size)
        ]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def load_onnx(path: str | Path, producer: str = "export") -> OnnxClassifier:
    """An onnxruntime session of an exported classifier; a bad file names the stage to rerun."""
    path = Path(path)
    fix = f"rerun the {producer} stage (dvc repro -f {producer})"
    if not path.is_file():
        raise DataError(f"{path}: ONNX model not found; {fix}")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        meta = json.loads(session.get_modelmeta().custom_metadata_map[META_KEY])
        size = int(meta["transform"]["size"])
    except Exception as err:  # onnxruntime raises its own, unexported error types
        raise DataError(
            f"{path}: not a pneumogan ONNX model ({type(err).__name__}: {err}); {fix}"
        ) from None
    names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if names != ([INPUT], [OUTPUT]):
        raise DataError(
            f"{path}: graph has inputs/outputs {names}, expected {INPUT}/{OUTPUT}; {fix}"
        )
    return OnnxClassifier(session, size, meta)
