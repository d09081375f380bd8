"""The input gate: how unlike the training X-rays an image is, from the classifier's own features.

The score of an image is the Mahalanobis distance (Lee et al., 2018) of its pooled penultimate
features (`model.features`) to the nearer of the two class means of the real training
images, under one covariance shared by both classes and shrunk towards a multiple of the
identity by Ledoit and Wolf's rule (sklearn), so that a feature that never varied on the
training images (a unit a ReLU always silenced) still has a finite, small variance: an input
that wakes it is far. The threshold is the `pass_rate` quantile of the validation split's
scores (the higher order statistic, so at least that share of real validation X-rays pass);
an image scoring above it is flagged.

The gate is a small torch module that travels with the network: saved in the classifier's
checkpoint (its tensors under `gate.`, its figures in the description), run by the predictor
and inside the ONNX graph, so every consumer computes the same score in float32 and compares
it with the same float32 threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from torch import nn

PREFIX = "gate"  # the gate's tensors in the classifier checkpoint: gate.centres, gate.whiten
METHOD = "mahalanobis"  # what `score` means, in the checkpoint's description


def _float32(value: float) -> float:
    """`value` rounded to the nearest float32, so that float64 and float32 comparisons agree."""
    return float(np.float32(value))


class Gate(nn.Module):
    """Features N×D → score N (Mahalanobis distance to the nearer class mean); `flag` says
    which scores lie above the threshold.

    `whiten` (D×D) maps centred features to coordinates where the shared covariance is the
    identity; `centres` (C×D) are the class means in those coordinates.
    """

    def __init__(self, centres: torch.Tensor, whiten: torch.Tensor, info: dict[str, Any]) -> None:
        super().__init__()
        self.register_buffer("centres", centres.float().contiguous())
        self.register_buffer("whiten", whiten.float().contiguous())
        self.info = dict(info)
        self.threshold = _float32(info["threshold"])

    @property
    def dim(self) -> int:
        return int(self.whiten.shape[0])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = features.float() @ self.whiten  # N×D
        d2 = ((z.unsqueeze(1) - self.centres.unsqueeze(0)) ** 2).sum(-1)  # N×C
        return torch.sqrt(d2.min(1).values)

    def flag(self, score: torch.Tensor) -> torch.Tensor:
        """True where `score` is above the threshold: the input does not look like the
        training X-rays."""
        return score > torch.tensor(self.threshold, dtype=score.dtype, device=score.device)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"centres": self.centres, "whiten": self.whiten}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> Gate:
        return cls(tensors["centres"], tensors["whiten"], info)


@torch.no_grad()
def features(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """`model.features` of encoded images `x` (N×1×S×S), in batches, on the CPU."""
    model.eval()
    out = [
        model.features(x[i : i + batch_size].to(device)).float().cpu()
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, 0)


def fit_gate(
    train_features: torch.Tensor,
    train_labels: np.ndarray,
    val_features: torch.Tensor,
    pass_rate: float,
) -> Gate:
    """A gate fitted on the real training images' features and labels, its threshold the
    `pass_rate` quantile of the validation images' scores."""
    f = train_features.double().numpy()
    y = np.asarray(train_labels).astype(np.int64)
    classes = np.unique(y)
    if f.ndim != 2 or len(f) != len(y) or len(f) < 2:
        raise ValueError(f"need features N×D of at least 2 images, got {tuple(f.shape)}")
    if len(val_features) == 0:
        raise ValueError("need validation images to set the gate's threshold")
    means = np.stack([f[y == c].mean(0) for c in classes])
    centred = f - means[np.searchsorted(classes, y)]
    shrunk = LedoitWolf(assume_centered=True).fit(centred)
    values, vectors = np.linalg.eigh(shrunk.covariance_)
    values = np.maximum(values, values.max() * 1e-12)  # a flat feature set stays finite
    whiten = vectors / np.sqrt(values)  # x @ whiten has identity covariance
    centres = means @ whiten
    provisional = Gate(torch.from_numpy(centres), torch.from_numpy(whiten), {"threshold": 0.0})
    val_scores = provisional(val_features).double().numpy()
    threshold = _float32(np.quantile(val_scores, pass_rate, method="higher"))
    info = {
        "method": METHOD,
        "threshold": threshold,
        "pass_rate": float(pass_rate),
        "val_pass_rate": float(np.mean(val_scores <= threshold)),
        "shrinkage": float(shrunk.shrinkage_),
        "features": int(f.shape[1]),
        "n_train": len(f),
        "n_val": len(val_scores),
    }
    return Gate(torch.from_numpy(centres), torch.from_numpy(whiten), info)
