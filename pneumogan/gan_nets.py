"""DCGAN networks (Radford et al., 2016) scaled to every MedMNIST size, in two variants.

`dcgan`: batch-norm discriminator (trained with the non-saturating loss); `sn_hinge`:
spectral-norm discriminator without batch norm (trained with the hinge loss; Miyato et al.,
2018). The losses live with the training loop, in `gan_train`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from pneumogan.choices import GAN_VARIANTS


@dataclass(frozen=True)
class GanConfig:
    """Everything needed to rebuild the networks; saved inside the checkpoint."""

    size: int
    latent_dim: int
    width: int
    variant: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def levels(size: int) -> tuple[int, int]:
    """(base, k): the generator starts at base×base and doubles k times to reach `size`."""
    base = 7 if size % 7 == 0 else 4
    k = round(math.log2(size / base))
    if base * 2**k != size or k < 1:
        raise ValueError(f"image size {size} is not 4·2^k or 7·2^k (use 28, 64, 128 or 224)")
    return base, k


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights N(0, 0.02); batch-norm scale N(1, 0.02), shift 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        base, k = levels(cfg.size)
        ch = [cfg.width * 2 ** (k - 1 - i) for i in range(k)]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.latent_dim, ch[0], base, 1, 0, bias=False),
            nn.BatchNorm2d(ch[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in itertools.pairwise(ch):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(ch[-1], 1, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim, self.size = cfg.latent_dim, cfg.size
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        if cfg.variant not in GAN_VARIANTS:
            raise ValueError(f"GAN variant {cfg.variant!r}: must be one of {list(GAN_VARIANTS)}")
        base, k = levels(cfg.size)
        ch = [cfg.width * 2**i for i in range(k)]
        sn = cfg.variant == "sn_hinge"
        layers: list[nn.Module] = [nn.Conv2d(1, ch[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in itertools.pairwise(ch):
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=sn))
            if not sn:  # spectral norm replaces batch norm as the stabiliser
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, True))
        layers += [nn.Conv2d(ch[-1], 1, base, 1, 0)]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)
        if sn:
            for m in self.net:
                if isinstance(m, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)
