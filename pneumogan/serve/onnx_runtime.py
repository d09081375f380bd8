"""The exported classifier run by onnxruntime: numpy in, P(pneumonia) out, no torch imported.

The ONNX graph (written by the `export` stage, `pneumogan.serve.onnx_export`) takes uint8 pixels
N×S×S and holds the pipeline's whole preprocessing (the checkpoint's fixed pixel map) and
the final sigmoid, so a consumer needs only images at the model's size. A graph of a gated
checkpoint also returns the input gate's score and decision (`ood_score`, `ood_flag`); one
exported before the gate existed returns P(pneumonia) alone, and runs ungated. Its description
(JSON under the `pneumogan` metadata key) names the size, the labels, the network and the gate.
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
SCORE, FLAG = "ood_score", "ood_flag"  # the gate's outputs, when the checkpoint had a gate
GATED = [OUTPUT, SCORE, FLAG]


@dataclass
class OnnxClassifier:
    session: Any  # onnxruntime.InferenceSession
    size: int  # image side the graph takes, in px
    meta: dict[str, Any]

    @property
    def gated(self) -> bool:
        return "gate" in self.meta

    @property
    def gate_threshold(self) -> float | None:
        return float(self.meta["gate"]["threshold"]) if self.gated else None

    def _run(self, names: list[str], images: np.ndarray, batch_size: int) -> list[np.ndarray]:
        if images.ndim != 3 or images.shape[1:] != (self.size, self.size):
            raise DataError(
                f"images of shape {images.shape[1:]} for a model built for "
                f"{self.size}×{self.size} px"
            )
        pixels = np.ascontiguousarray(images, dtype=np.uint8)
        out = [
            self.session.run(names, {INPUT: pixels[i : i + batch_size]})
            for i in range(0, len(pixels), batch_size)
        ]
        empty = {OUTPUT: np.zeros(0), SCORE: np.zeros(0), FLAG: np.zeros(0, bool)}
        return [
            np.concatenate([o[k] for o in out]) if out else empty[name]
            for k, name in enumerate(names)
        ]

    def predict_proba(self, images: np.ndarray, *, batch_size: int) -> np.ndarray:
        """P(pneumonia) for each uint8 image (N×size×size)."""
        return self._run([OUTPUT], images, batch_size)[0].astype(np.float64)

    def predict(
        self, images: np.ndarray, *, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(P(pneumonia), the gate's score, its flag) for each uint8 image; the last two are
        None for a graph without a gate."""
        if not self.gated:
            return self.predict_proba(images, batch_size=batch_size), None, None
        p, score, flag = self._run(GATED, images, batch_size)
        return p.astype(np.float64), score.astype(np.float64), flag.astype(bool)


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
    want = ([INPUT], GATED if "gate" in meta else [OUTPUT])
    if names != want:
        raise DataError(
            f"{path}: graph has inputs/outputs {names}, expected {want[0]}/{want[1]}; {fix}"
        )
    return OnnxClassifier(session, size, meta)
