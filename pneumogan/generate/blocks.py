"""SNGAN's residual blocks (Miyato et al., 2018), shared by the residual generators and
discriminators: upsampling blocks for G, spectral-norm downsampling blocks for D."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ResBlockUp(nn.Module):
    """BN, ReLU, 2× nearest upsampling, 3×3 conv, BN, ReLU, 3×3 conv; upsampled 1×1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv1(F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest"))
        return self.conv2(F.relu(self.bn2(h))) + self.shortcut(up)


class ResBlockDown(nn.Module):
    """(ReLU,) 3×3 conv, ReLU, 3×3 conv, 2× average pooling; 1×1 shortcut; spectral norm."""

    def __init__(self, c_in: int, c_out: int, first: bool) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.first = first  # the first block sees pixels: no ReLU before its first conv
        self.conv1 = sn(nn.Conv2d(c_in, c_out, 3, 1, 1))
        self.conv2 = sn(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.shortcut = sn(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = F.avg_pool2d(self.conv2(F.relu(h)), 2)
        if self.first:  # SNGAN's optimised first block: pool, then project
            return h + self.shortcut(F.avg_pool2d(x, 2))
        return h + F.avg_pool2d(self.shortcut(x), 2)
