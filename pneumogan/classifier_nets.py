"""Classifier networks, built by name from a registry: a compact ResNet for 28 px, or torchvision's.

Every network maps N×1×H×W to one logit per image and has `features(x)`, the pooled
penultimate layer (the reference network's features measure the GAN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pneumogan.choices import ARCHS


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything needed to rebuild the network; saved inside the checkpoint."""

    arch: str
    size: int
    width: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (He et al., 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem + three residual stages (width, 2·width, 4·width), strides 1, 2, 2; one logit out."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        width = cfg.width
        # Larger images get a strided stem so the feature maps stay about 28 px.
        stem_stride = max(1, cfg.size // 28)
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1),
            BasicBlock(width, 2 * width, 2),
            BasicBlock(2 * width, 4 * width, 2),
        )
        self.head = nn.Linear(4 * width, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate layer (4·width numbers per image)."""
        return torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).view(-1)


class TorchvisionResNet(nn.Module):
    """torchvision's ResNet-18/34 from scratch, with a one-channel stem and one logit."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, cfg.arch)(weights=None, num_classes=1)
        net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return torch.flatten(n.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.fc(self.features(x)).view(-1)


REGISTRY: dict[str, Callable[[ClassifierConfig], nn.Module]] = {
    "resnet_small": SmallResNet,
    "resnet18": TorchvisionResNet,
    "resnet34": TorchvisionResNet,
}
assert tuple(REGISTRY) == ARCHS, "choices.ARCHS and the registry must list the same networks"


def build(cfg: ClassifierConfig) -> nn.Module:
    """The network named by `cfg.arch`; an unknown name lists the known ones."""
    try:
        factory = REGISTRY[cfg.arch]
    except KeyError:
        raise ValueError(f"unknown classifier arch {cfg.arch!r}; known: {list(REGISTRY)}") from None
    return factory(cfg)
