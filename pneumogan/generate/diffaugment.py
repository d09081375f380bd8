"""Differentiable augmentation for GANs on little data (DiffAugment; Zhao et al., 2020).

The same kind of random transform is applied to every image the discriminator sees, real and
generated, in its own step and in the generator's; being differentiable, it lets the
generator's gradient pass through. D then cannot memorise the few real images it has, and G
is not pushed to reproduce the augmentations (they are applied to both sides).

Policies, for grayscale images in [-1, 1] (the paper's, minus saturation, which needs colour):
`color` (brightness ±0.5, contrast ×[0.5, 1.5] about the image's mean), `translation`
(integer shifts up to 1/8 of the side, zero padding), `cutout` (a square of half the side set
to 0 at a random place). Random draws come from the training loop's generator.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from pneumogan.core.choices import DIFFAUGMENT


def diff_augment(
    x: torch.Tensor, policies: tuple[str, ...], generator: torch.Generator
) -> torch.Tensor:
    """`x` (N×1×H×W) with each policy applied in turn, fresh draws per image."""
    for policy in policies:
        if policy not in DIFFAUGMENT:
            raise ValueError(f"unknown DiffAugment policy {policy!r}; known: {list(DIFFAUGMENT)}")
        x = _POLICIES[policy](x, generator)
    return x


def _rand(generator: torch.Generator, *shape: int, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(*shape, generator=generator).to(like)


def color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand(generator, n, 1, 1, 1, like=x) - 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(generator, n, 1, 1, 1, like=x) + 0.5) + mean


def _integer_shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Move each image by whole pixels (dy, dx), filling with 0 (grid_sample, nearest)."""
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * dx / w  # sampling at (out - shift) moves the content by +shift
    theta[:, 1, 2] = -2 * dy / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def translation(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n,), generator=generator).to(x)
    dx = torch.randint(-sx, sx + 1, (n,), generator=generator).to(x)
    return _integer_shift(x, dy, dx)


def cutout(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # the square's top-left corner: it may stick out of the image (as in the paper)
    top = torch.randint(-(ch // 2), h - ch // 2, (n, 1, 1), generator=generator)
    left = torch.randint(-(cw // 2), w - cw // 2, (n, 1, 1), generator=generator)
    rows = torch.arange(h).view(1, -1, 1)
    cols = torch.arange(w).view(1, 1, -1)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).unsqueeze(1).to(x)


_POLICIES = {"color": color, "translation": translation, "cutout": cutout}
