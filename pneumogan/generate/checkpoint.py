"""The generator's checkpoint: its networks, the config that built them, kept epoch and class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from pneumogan.core.checkpoint import load_checkpoint, save_checkpoint, split_prefix, with_prefix
from pneumogan.core.errors import DataError
from pneumogan.core.transforms import ImageTransform
from pneumogan.generate.config import GanConfig
from pneumogan.generate.nets import build_generator

KIND = "gan"


def save_gan(
    path: Path,
    G: nn.Module,
    D: nn.Module | None,
    cfg: GanConfig,
    epoch: int,
    label: int,
) -> None:
    """Both networks (a diffusion model has no D), the config that built them, the kept epoch
    and the class they serve (an unconditional generator's only class; the class a conditional
    one is asked to draw for fuse)."""
    tensors = with_prefix(G.state_dict(), "generator")
    if D is not None:
        tensors.update(with_prefix(D.state_dict(), "disc"))
    meta = {
        "config": cfg.to_dict(),
        "transform": ImageTransform(size=cfg.size).to_dict(),
        "epoch": epoch,
        "label": label,
    }
    save_checkpoint(path, KIND, tensors, meta)


def load_generator(path: Path) -> tuple[nn.Module, ImageTransform, dict[str, Any]]:
    """The generator of a GAN checkpoint, its output transform and its description."""
    tensors, meta = load_checkpoint(path, KIND, "train_gan")
    try:
        G = build_generator(GanConfig(**meta["config"]))
        G.load_state_dict(split_prefix(tensors, "generator"))
        transform = ImageTransform.from_dict(meta["transform"])
        label, epoch = int(meta["label"]), int(meta["epoch"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(
            f"{path}: checkpoint does not rebuild its generator ({type(err).__name__}: {err}); "
            "rerun train_gan (dvc repro -f train_gan)"
        ) from None
    return G.eval(), transform, {**meta, "label": label, "epoch": epoch}
