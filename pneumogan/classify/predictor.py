"""The classifier as a predictor: P(pneumonia) for uint8 images, preprocessed by its checkpoint,
and, where the checkpoint has one, its input gate's score and decision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pneumogan.classify.checkpoint import Classifier


@torch.no_grad()
def predict_proba(
    clf: Classifier, images: np.ndarray, *, batch_size: int, device: torch.device | str = "cpu"
) -> np.ndarray:
    """P(pneumonia) for each uint8 image."""
    clf.model.eval()
    x = clf.transform.encode(images)
    out = [
        torch.sigmoid(clf.model(x[i : i + batch_size].to(device))).cpu()
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


@dataclass
class Prediction:
    """P(pneumonia) of each image and the gate's answer: the out-of-distribution score and
    whether it is above the threshold (flagged). Without a gate both are None."""

    p: np.ndarray
    score: np.ndarray | None
    flagged: np.ndarray | None


@torch.no_grad()
def gate_scores(
    clf: Classifier, images: np.ndarray, *, batch_size: int, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """The gate's score of each uint8 image and whether it is flagged (the checkpoint must
    have a gate)."""
    if clf.gate is None:
        raise ValueError("the classifier has no input gate")
    clf.model.eval()
    gate = clf.gate.to(device)
    x = clf.transform.encode(images)
    scores = [
        gate(clf.model.features(x[i : i + batch_size].to(device))).cpu()
        for i in range(0, x.shape[0], batch_size)
    ]
    score = torch.cat(scores) if scores else torch.zeros(0)
    return score.double().numpy(), clf.gate.flag(score).numpy()


def predict(
    clf: Classifier, images: np.ndarray, *, batch_size: int, device: torch.device | str = "cpu"
) -> Prediction:
    """P(pneumonia), and the gate's score and decision where the checkpoint has a gate."""
    p = predict_proba(clf, images, batch_size=batch_size, device=device)
    if clf.gate is None:
        return Prediction(p, None, None)
    score, flagged = gate_scores(clf, images, batch_size=batch_size, device=device)
    return Prediction(p, score, flagged)
