"""The classifier as one ONNX graph: uint8 pixels in, P(pneumonia) out (torch's dynamo exporter).

The graph wraps the network with its checkpoint's pixel map and the sigmoid, so the exported
model needs no preprocessing code; the batch dimension is dynamic. A checkpoint with an input
gate adds two outputs: the gate's score (`ood_score`, float32) and its decision (`ood_flag`,
true above the threshold, which the description also holds). Weights are kept inside the one
file, so two exports of the same checkpoint give the same bytes.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from pneumogan.classify.checkpoint import Classifier
from pneumogan.core.choices import LABELS
from pneumogan.core.files import atomic_path
from pneumogan.serve.onnx_runtime import FLAG, INPUT, META_KEY, OUTPUT, SCORE

STACK_TRACE = "pkg.torch.onnx.stack_trace"  # node metadata naming source files by path


class PixelsToProbability(nn.Module):
    """uint8 N×S×S → P(pneumonia) N, by the checkpoint's own pixel map."""

    def __init__(self, clf: Classifier) -> None:
        super().__init__()
        self.net = clf.model
        self.low = float(clf.transform.low)
        self.scale = (clf.transform.high - clf.transform.low) / 255.0

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float().mul(self.scale).add(self.low).unsqueeze(1)
        return torch.sigmoid(self.net(x))


class PixelsToGatedProbability(PixelsToProbability):
    """uint8 N×S×S → (P(pneumonia) N, the gate's score N, its flag N), as the predictor
    computes them."""

    def __init__(self, clf: Classifier) -> None:
        super().__init__(clf)
        self.gate = clf.gate

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = pixels.float().mul(self.scale).add(self.low).unsqueeze(1)
        score = self.gate(self.net.features(x))
        return torch.sigmoid(self.net(x)), score, self.gate.flag(score)


def export_onnx(clf: Classifier, path: Path, opset: int) -> None:
    """Write `clf` as an ONNX file at `path` (whole or not at all)."""
    for noisy in ("onnx_ir", "onnxscript"):  # per-pass INFO lines of the exporter's optimiser
        logging.getLogger(noisy).setLevel(logging.WARNING)
    gated = clf.gate is not None
    wrapped = (PixelsToGatedProbability(clf) if gated else PixelsToProbability(clf)).eval()
    size = clf.transform.size
    example = torch.zeros(2, size, size, dtype=torch.uint8)
    with warnings.catch_warnings():  # torch.export's own pytree deprecation, not ours
        warnings.filterwarnings("ignore", "`isinstance.treespec, LeafSpec.`", FutureWarning)
        program = torch.onnx.export(
            wrapped,
            (example,),
            dynamo=True,
            input_names=[INPUT],
            output_names=[OUTPUT, SCORE, FLAG] if gated else [OUTPUT],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    proto = program.model_proto
    # The exporter notes each node's Python stack trace, with this checkout's absolute paths:
    # dropped, so that the same checkpoint exported from any clone gives the same bytes.
    for node in proto.graph.node:
        kept = [p for p in node.metadata_props if p.key != STACK_TRACE]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    description = {
        "kind": "classifier",
        "config": clf.config.to_dict(),
        "transform": clf.transform.to_dict(),
        "labels": {str(k): v for k, v in LABELS.items()},
        "output": "P(pneumonia)",
    }
    if gated:
        description["gate"] = clf.gate.info
    onnx.helper.set_model_props(proto, {META_KEY: json.dumps(description, sort_keys=True)})
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))


def parity(p_torch: np.ndarray, p_onnx: np.ndarray, threshold: float) -> dict[str, float]:
    """How far the exported model is from the checkpoint on the same images.

    The largest difference is given twice: as a probability (what `export.max_abs_diff`
    bounds) and in millionths of one, which `dvc metrics diff` (five decimals) shows as a
    number rather than 0.0 beside 0.0.
    """
    diff = np.abs(np.asarray(p_torch, np.float64) - np.asarray(p_onnx, np.float64))
    flips = (np.asarray(p_torch) >= threshold) != (np.asarray(p_onnx) >= threshold)
    worst = float(diff.max())
    return {
        "max_abs_diff": worst,
        "max_abs_diff_ppm": worst * 1e6,
        "label_flips": int(flips.sum()),
        "n": len(diff),
    }


def gate_parity(
    score_torch: np.ndarray,
    flag_torch: np.ndarray,
    score_onnx: np.ndarray,
    flag_onnx: np.ndarray,
) -> dict[str, float]:
    """How far the exported gate is from the checkpoint's: the largest relative difference in
    score (the score's scale is the model's own) and the decisions that differ."""
    a, b = np.asarray(score_torch, np.float64), np.asarray(score_onnx, np.float64)
    relative = np.abs(a - b) / np.maximum(np.abs(a), 1.0)
    flips = np.asarray(flag_torch, bool) != np.asarray(flag_onnx, bool)
    return {"gate_max_rel_diff": float(relative.max()), "gate_flips": int(flips.sum())}
