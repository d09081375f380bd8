"""The classifier as a predictor: P(pneumonia) for uint8 images, preprocessed by its checkpoint."""

from __future__ import annotations

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
