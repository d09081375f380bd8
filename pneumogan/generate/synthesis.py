"""Drawing uint8 images from a trained generator, and the minority images `fuse` asks for."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pneumogan.core.progress import progress
from pneumogan.core.transforms import ImageTransform
from pneumogan.generate.config import generate


@torch.no_grad()
def draw(
    G: nn.Module,
    transform: ImageTransform,
    n: int,
    *,
    label: int | None = None,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """`n` uint8 images from G (of class `label`, for a conditional G); the noise comes from
    `generator` on the CPU."""
    # All the noise at once: torch's CPU randn gives other values when drawn in other chunk
    # sizes, and the images must not depend on the batch size.
    z_all = torch.randn(n, G.latent_dim, generator=generator)
    chunks = [np.zeros((0, G.size, G.size), dtype=np.uint8)]
    for start in progress(range(0, n, batch_size), desc="synthesize", unit="batch"):
        z = z_all[start : start + batch_size].to(device)
        chunks.append(transform.decode(generate(G, z, label)))
    return np.concatenate(chunks)


def preview(real: np.ndarray, synthetic: np.ndarray, n: int = 64) -> np.ndarray:
    """Up to n/2 real images followed by synthetic ones, for a side-by-side grid."""
    top = real[: n // 2]
    return np.concatenate([top, synthetic[: n - len(top)]])


def draw_for_fuse(
    G: nn.Module,
    transform: ImageTransform,
    need: int,
    probe: int,
    *,
    label: int | None = None,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """(added, measured): the `need` images fuse adds, and those plus enough more for a
    quality probe of `probe` images, all from one stream (the added ones come first)."""
    drawn = draw(
        G,
        transform,
        max(need, probe),
        label=label,
        batch_size=batch_size,
        generator=generator,
        device=device,
    )
    return drawn[:need], drawn
