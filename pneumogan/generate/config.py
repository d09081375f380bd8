"""What rebuilds a generator: its config (saved inside the checkpoint) and the image pyramid.

A generator is conditional when `classes` > 0: it is trained on every training image with its
label and draws the class it is asked for, `G(z, y)` with `y` a LongTensor of labels in
[0, classes); its discriminator, if any, scores `D(x, y)`. An unconditional generator
(`classes` = 0) is `G(z)` and learns one class. Every generator carries `latent_dim`, `size`
and `classes` as attributes, so drawing code needs nothing else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class GanConfig:
    """Everything needed to rebuild the networks; saved inside the checkpoint."""

    size: int
    latent_dim: int
    width: int
    variant: str
    steps: int = 20  # diffusion: DDIM sampling steps per image (the GANs ignore it)
    classes: int = 0  # conditional generators: how many classes they draw; 0 is unconditional
    guidance: float = 1.0  # conditional diffusion: classifier-free guidance scale (see diffusion)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def levels(size: int) -> tuple[int, int]:
    """(base, k): the generator starts at base×base and doubles k times to reach `size`."""
    base = 7 if size % 7 == 0 else 4
    k = round(math.log2(size / base))
    if base * 2**k != size or k < 1:
        raise ValueError(f"image size {size} is not 4·2^k or 7·2^k (use 28, 64, 128 or 224)")
    return base, k


def generate(G: nn.Module, z: torch.Tensor, label: int | None = None) -> torch.Tensor:
    """`G(z)`, or `G(z, y)` with every y = `label` for a conditional generator."""
    if (label is None) == bool(G.classes):
        raise ValueError(
            "a conditional generator draws the class it is given (label=...)"
            if G.classes
            else "an unconditional generator draws its one class: pass no label"
        )
    return G(z) if label is None else G(z, torch.full((len(z),), label, device=z.device))
