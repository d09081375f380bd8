"""Training-time augmentation: random shift, rotation, zoom, contrast; mixup (Zhang et al. 2018)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F


def augment(
    x: torch.Tensor,
    max_shift: float,
    max_rotate: float,
    generator: torch.Generator,
    *,
    max_zoom: float = 0.0,
    contrast: float = 0.0,
) -> torch.Tensor:
    """Per-image random geometry and intensity, each drawn uniformly and independently.

    Rotation by ±`max_rotate` degrees, shift by ±`max_shift` of the side, zoom by a factor in
    [1 − `max_zoom`, 1 + `max_zoom`] (above 1 magnifies), then a contrast factor in
    [1 − `contrast`, 1 + `contrast`] about the image's mean and a brightness offset of
    ±`contrast` (pixels are in [-1, 1], clipped back to it). A knob at 0 draws nothing, so
    turning one on leaves the draws of the others as they were.
    """
    n = x.shape[0]
    if max_shift or max_rotate or max_zoom:
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_rotate)
        shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 2 * max_shift  # grid: [-1, 1]
        cos, sin = torch.cos(angle), torch.sin(angle)
        if max_zoom:
            # the grid samples the input at coordinates / zoom: a zoom above 1 magnifies
            inv = 1 / (1 + (torch.rand(n, generator=generator) * 2 - 1) * max_zoom)
            cos, sin = cos * inv, sin * inv
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)],
            1,
        ).to(x)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    if contrast:
        factor = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * contrast
        offset = (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * contrast
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * factor.to(x) + mean + offset.to(x)).clamp(-1, 1)
    return x


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convex mix of shuffled pairs with λ ~ Beta(α, α), one λ per batch; α = 0 is off."""
    if alpha <= 0:
        return x, y
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
