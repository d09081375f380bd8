"""The classifier's checkpoint: its network, the config that built it, its transform, info and
input gate.

The gate (`pneumogan.classify.gate`) is stored beside the network's weights, its tensors under
`gate.` and its figures under `gate` in the description. A checkpoint written before the gate
existed has neither, and loads with `gate` None: it predicts as before, ungated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from pneumogan.classify.gate import PREFIX, Gate
from pneumogan.classify.nets import ClassifierConfig, build
from pneumogan.core.checkpoint import load_checkpoint, save_checkpoint, split_prefix, with_prefix
from pneumogan.core.errors import DataError
from pneumogan.core.transforms import ImageTransform

KIND = "classifier"


@dataclass
class Classifier:
    """A network with the config that built it, its input transform, its training summary and
    its input gate (None: none was fitted, as in checkpoints older than the gate)."""

    model: nn.Module
    config: ClassifierConfig
    transform: ImageTransform
    info: dict[str, Any]
    gate: Gate | None = None


def save_classifier(path: Path, clf: Classifier) -> None:
    meta = {
        "config": clf.config.to_dict(),
        "transform": clf.transform.to_dict(),
        "info": clf.info,
    }
    tensors = dict(clf.model.state_dict())
    if clf.gate is not None:
        meta["gate"] = clf.gate.info
        tensors.update(with_prefix(clf.gate.tensors(), PREFIX))
    save_checkpoint(path, KIND, tensors, meta)


def load_classifier(path: Path, producer: str = "train") -> Classifier:
    """Rebuild a classifier from its checkpoint; `producer` is the stage that writes it."""
    tensors, meta = load_checkpoint(path, KIND, producer)
    try:
        cfg = ClassifierConfig.from_dict(meta["config"])
        model = build(cfg)
        gate_tensors = split_prefix(tensors, PREFIX)
        model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(PREFIX + ".")})
        transform = ImageTransform.from_dict(meta["transform"])
        gate = Gate.from_tensors(gate_tensors, meta["gate"]).eval() if "gate" in meta else None
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(
            f"{path}: checkpoint does not rebuild its network ({type(err).__name__}: {err}); "
            f"rerun the {producer} stage (dvc repro -f {producer})"
        ) from None
    return Classifier(model.eval(), cfg, transform, dict(meta.get("info", {})), gate)
