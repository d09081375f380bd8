"""Training-time augmentation: random shift and rotation, and mixup (Zhang et al., 2018)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F


def augment(
    x: torch.Tensor, max_shift: float, max_rotate: float, generator: torch.Generator
) -> torch.Tensor:
    """Per-image random rotation (±max_rotate degrees) and shift (±max_shift of the side)."""
    if max_shift == 0 and max_rotate == 0:
        return x
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_rotate)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 2 * max_shift  # grid is [-1, 1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    ).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


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
