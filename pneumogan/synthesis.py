"""The trained generator: its checkpoint, and drawing uint8 images from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pneumogan.checkpoint import load_checkpoint, save_checkpoint, split_prefix, with_prefix
from pneumogan.errors import DataError
from pneumogan.gan_nets import Discriminator, GanConfig, Generator, build_generator
from pneumogan.progress import progress
from pneumogan.transforms import ImageTransform

KIND = "gan"


def save_gan(
    path: Path,
    G: nn.Module,
    D: Discriminator | None,
    cfg: GanConfig,
    epoch: int,
    label: int,
) -> None:
    """Both networks (a diffusion model has no D), the config that built them, the kept epoch
    and the class they imitate."""
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


def load_generator(path: Path) -> tuple[Generator, ImageTransform, dict[str, Any]]:
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


@torch.no_grad()
def draw(
    G: Generator,
    transform: ImageTransform,
    n: int,
    *,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """`n` uint8 images from G; the noise comes from `generator` on the CPU."""
    # All the noise at once: torch's CPU randn gives other values when drawn in other chunk
    # sizes, and the images must not depend on the batch size.
    z_all = torch.randn(n, G.latent_dim, generator=generator)
    chunks = [np.zeros((0, G.size, G.size), dtype=np.uint8)]
    for start in progress(range(0, n, batch_size), desc="synthesize", unit="batch"):
        z = z_all[start : start + batch_size]
        chunks.append(transform.decode(G(z.to(device))))
    return np.concatenate(chunks)


def preview(real: np.ndarray, synthetic: np.ndarray, n: int = 64) -> np.ndarray:
    """Up to n/2 real images followed by synthetic ones, for a side-by-side grid."""
    top = real[: n // 2]
    return np.concatenate([top, synthetic[: n - len(top)]])


def draw_for_fuse(
    G: Generator,
    transform: ImageTransform,
    need: int,
    probe: int,
    *,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """(added, measured): the `need` images fuse adds, and those plus enough more for a
    quality probe of `probe` images, all from one stream (the added ones come first)."""
    drawn = draw(
        G, transform, max(need, probe), batch_size=batch_size, generator=generator, device=device
    )
    return drawn[:need], drawn
