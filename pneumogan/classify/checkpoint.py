"""The classifier's checkpoint: its network, the config that built it, its transform and info."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from pneumogan.classify.nets import ClassifierConfig, build
from pneumogan.core.checkpoint import load_checkpoint, save_checkpoint
from pneumogan.core.errors import DataError
from pneumogan.core.transforms import ImageTransform

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
