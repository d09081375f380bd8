"""The classifier as a predictor: rebuilt from its checkpoint, preprocessing included."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pneumogan.checkpoint import load_checkpoint, save_checkpoint
from pneumogan.classifier_nets import ClassifierConfig, build
from pneumogan.errors import DataError
from pneumogan.transforms import ImageTransform

KIND = "classifier"


@dataclass
class Classifier:
    """A network with the config that built it, its input transform and its training summary."""

    model: nn.Module
    config: ClassifierConfig
    transform: ImageTransform
    info: dict[str, Any]


def save_classifier(path: Path, clf: Classifier) -> None:
    meta = {
        "config": clf.config.to_dict(),
        "transform": clf.transform.to_dict(),
        "info": clf.info,
    }
    save_checkpoint(path, KIND, clf.model.state_dict(), meta)


def load_classifier(path: Path, producer: str = "train") -> Classifier:
    """Rebuild a classifier from its checkpoint; `producer` is the stage that writes it."""
    tensors, meta = load_checkpoint(path, KIND, producer)
    try:
        cfg = ClassifierConfig.from_dict(meta["config"])
        model = build(cfg)
        model.load_state_dict(tensors)
        transform = ImageTransform.from_dict(meta["transform"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(
            f"{path}: checkpoint does not rebuild its network ({type(err).__name__}: {err}); "
            f"rerun the {producer} stage (dvc repro -f {producer})"
        ) from None
    return Classifier(model.eval(), cfg, transform, dict(meta.get("info", {})))


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
