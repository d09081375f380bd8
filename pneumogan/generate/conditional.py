"""Class-conditional SNGAN networks: cGANs with a projection discriminator (Miyato & Koyama,
2018), the SNGAN authors' own conditional extension of their residual networks.

Balancing draws images of the class it is short of, so one conditional generator trained on
every labelled image replaces one unconditional generator per class and shares what the
classes have in common (anatomy, exposure, devices). The generator is `nets.ResNetG` whose
residual blocks normalise with conditional batch norm, a per-class scale and shift after a
batch norm without affine; the discriminator is `nets.ResNetD` plus the projection term
⟨embed(y), φ(x)⟩, which scores how well the features match the label with one inner product
rather than concatenating the label to the input (the paper's better-behaved alternative).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from pneumogan.generate.blocks import ResBlockDown
from pneumogan.generate.config import GanConfig, levels


def _check_classes(cfg: GanConfig) -> None:
    """Raise ValueError unless `cfg` asks for at least two classes."""
    if cfg.classes < 2:
        raise ValueError(
            f"a conditional GAN needs gan.classes >= 2, got {cfg.classes} "
            "(classes = 0 is the unconditional generator of nets)"
        )


def _check_labels(y: torch.Tensor | None, n: int) -> torch.Tensor:
    """The labels `y` as a LongTensor (n,); ValueError if missing or of the wrong shape."""
    if y is None:
        raise ValueError("a conditional network needs the class labels y (a LongTensor (N,))")
    if y.shape != (n,):
        raise ValueError(f"labels y must have shape ({n},), got {tuple(y.shape)}")
    return y.long()


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without affine, then a per-class scale and shift (looked up by label)."""

    def __init__(self, num_features: int, classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.scale = nn.Embedding(classes, num_features)
        self.shift = nn.Embedding(classes, num_features)
        # Start as the identity affine, so a fresh network is plain batch norm for every class
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Normalise x (N, C, H, W), then scale and shift each row by its class y (N,)."""
        h = self.bn(x)
        return self.scale(y)[:, :, None, None] * h + self.shift(y)[:, :, None, None]


class ConditionalResBlockUp(nn.Module):
    """blocks.ResBlockUp with both batch norms conditional on the class."""

    def __init__(self, c_in: int, c_out: int, classes: int) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(c_in, classes)
        self.bn2 = ConditionalBatchNorm2d(c_out, classes)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Upsample x (N, C_in, H, W) to (N, C_out, 2H, 2W), conditioned on y (N,)."""
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv1(F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest"))
        return self.conv2(F.relu(self.bn2(h, y))) + self.shortcut(up)


class ConditionalResNetG(nn.Module):
    """nets.ResNetG with conditional residual blocks: G(z, y) → N×1×size×size in [-1, 1]."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        _check_classes(cfg)
        self.latent_dim, self.size, self.classes = cfg.latent_dim, cfg.size, cfg.classes
        base, k = levels(cfg.size)
        ch = [cfg.width * 2 ** (k - 1 - i) for i in range(k)] + [cfg.width]
        self.base, self.c0 = base, ch[0]
        self.linear = nn.Linear(cfg.latent_dim, base * base * ch[0])
        self.blocks = nn.ModuleList(
            ConditionalResBlockUp(a, b, cfg.classes) for a, b in itertools.pairwise(ch)
        )
        # The last batch norm stays unconditional, as in the paper's generator
        self.bn = nn.BatchNorm2d(ch[-1])
        self.out = nn.Conv2d(ch[-1], 1, 3, 1, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images of classes y (N,) from latents z (N×latent_dim or N×latent_dim×1×1)."""
        y = _check_labels(y, z.shape[0])
        h = self.linear(z.flatten(1)).view(-1, self.c0, self.base, self.base)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out(F.relu(self.bn(h))))


class ProjectionD(nn.Module):
    """nets.ResNetD plus the projection ⟨embed(y), φ(x)⟩: D(x, y) → logits (N,)."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        _check_classes(cfg)
        self.classes = cfg.classes
        _, k = levels(cfg.size)
        ch = [1] + [cfg.width * 2**i for i in range(k)]
        self.blocks = nn.Sequential(
            *(ResBlockDown(a, b, first=i == 0) for i, (a, b) in enumerate(itertools.pairwise(ch)))
        )
        sn = nn.utils.parametrizations.spectral_norm
        self.linear = sn(nn.Linear(ch[-1], 1))
        # Spectral norm on the embedding too (the paper's SNEmbedID), so the projection cannot
        # escape the Lipschitz bound the rest of D keeps
        self.embed = sn(nn.Embedding(cfg.classes, ch[-1]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x): the residual features after ReLU, summed over space, (N, C)."""
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N,) of images x (N, 1, H, W) being real images of classes y (N,)."""
        y = _check_labels(y, x.shape[0])
        h = self.features(x)
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)
