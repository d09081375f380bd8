"""The generators `gan.variant` names, registered here, and the unconditional GAN networks.

Unconditional, on the minority class's images: `dcgan`, DCGAN (Radford et al., 2016),
batch-norm discriminator, non-saturating loss; `sn_hinge`, the same generator with a
spectral-norm discriminator without batch norm and the hinge loss (Miyato et al., 2018);
`resnet_sn`, SNGAN's residual networks (Miyato et al., 2018): upsampling residual blocks
(nearest-neighbour upsampling and 3×3 convolutions, so no checkerboard) and a spectral-norm
residual discriminator with global sum pooling, hinge loss; `ddpm`, a denoising diffusion
model (`pneumogan.generate.diffusion`). Class-conditional, on every image with its class:
`cgan` (`pneumogan.generate.conditional`), `progan` (`pneumogan.generate.progressive`) and
`cddpm` (`pneumogan.generate.diffusion`). The losses live with the training loop, in
`pneumogan.generate.train`.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from pneumogan.core.registry import GENERATORS
from pneumogan.generate.blocks import ResBlockDown, ResBlockUp
from pneumogan.generate.conditional import ConditionalResNetG, ProjectionD
from pneumogan.generate.config import GanConfig, levels
from pneumogan.generate.diffusion import DiffusionGenerator
from pneumogan.generate.progressive import ProgressiveDiscriminator, ProgressiveGenerator


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights N(0, 0.02); batch-norm scale N(1, 0.02), shift 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ResNetG(nn.Module):
    """z → base×base×(width·2^(k-1)) → k upsampling blocks (halving channels) → 1 channel, tanh."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        base, k = levels(cfg.size)
        ch = [cfg.width * 2 ** (k - 1 - i) for i in range(k)] + [cfg.width]
        self.base, self.c0 = base, ch[0]
        self.linear = nn.Linear(cfg.latent_dim, base * base * ch[0])
        self.blocks = nn.Sequential(*(ResBlockUp(a, b) for a, b in itertools.pairwise(ch)))
        self.bn = nn.BatchNorm2d(ch[-1])
        self.out = nn.Conv2d(ch[-1], 1, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.linear(z.flatten(1)).view(-1, self.c0, self.base, self.base)
        return torch.tanh(self.out(F.relu(self.bn(self.blocks(h)))))


class ResNetD(nn.Module):
    """k downsampling blocks (doubling channels from width) → ReLU → sum over space → linear."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        _, k = levels(cfg.size)
        ch = [1] + [cfg.width * 2**i for i in range(k)]
        self.blocks = nn.Sequential(
            *(ResBlockDown(a, b, first=i == 0) for i, (a, b) in enumerate(itertools.pairwise(ch)))
        )
        self.linear = nn.utils.parametrizations.spectral_norm(nn.Linear(ch[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(F.relu(self.blocks(x)).sum(dim=(2, 3)))


class Generator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.latent_dim, self.size, self.classes = cfg.latent_dim, cfg.size, 0
        if cfg.variant == "resnet_sn":
            self.net = ResNetG(cfg)  # PyTorch's default initialisation, as SNGAN's code
            return
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
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        if "adversarial" not in GENERATORS.get(cfg.variant).tags:
            known = list(GENERATORS.names("adversarial"))
            raise ValueError(f"GAN variant {cfg.variant!r}: a discriminator is one of {known}")
        if cfg.variant == "resnet_sn":
            self.net = ResNetD(cfg)
            return
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


# The generators `gan.variant` names. Adding one is one decorated function here: it takes the
# config and returns the generator (z -> images in [-1, 1], or a sampler that draws them) and
# its discriminator (None for a model trained without one). Tags tell the training loop how
# to train it: `adversarial` (a GAN step with the discriminator), `hinge` (hinge loss instead
# of the non-saturating one), `wgan_gp` (Wasserstein loss with a gradient penalty),
# `progressive` (networks that grow during training), `diffusion` (the denoising loop), and
# which images it learns: `conditional` (every training image with its class; it draws the
# class it is asked for) or, without the tag, the minority class's images alone.
@GENERATORS.register(title="DCGAN", tags=("adversarial",))
def dcgan(cfg: GanConfig) -> tuple[nn.Module, nn.Module | None]:
    return Generator(cfg), Discriminator(cfg)


@GENERATORS.register(title="spectral-norm D + hinge loss", tags=("adversarial", "hinge"))
def sn_hinge(cfg: GanConfig) -> tuple[nn.Module, nn.Module | None]:
    return Generator(cfg), Discriminator(cfg)


@GENERATORS.register(
    title="SNGAN ResNet (residual G, spectral-norm residual D, hinge loss)",
    tags=("adversarial", "hinge"),
)
def resnet_sn(cfg: GanConfig) -> tuple[nn.Module, nn.Module | None]:
    return Generator(cfg), Discriminator(cfg)


@GENERATORS.register(
    title="class-conditional SNGAN (conditional-BN residual G, projection D, hinge loss)",
    tags=("adversarial", "hinge", "conditional"),
)
def cgan(cfg: GanConfig) -> tuple[nn.Module, nn.Module | None]:
    return ConditionalResNetG(cfg), ProjectionD(cfg)


@GENERATORS.register(
    title="class-conditional progressive GAN (growing with fade-in, WGAN-GP)",
    tags=("adversarial", "wgan_gp", "progressive", "conditional"),
)
def progan(cfg: GanConfig) -> tuple[nn.Module, nn.Module | None]:
    return ProgressiveGenerator(cfg), ProgressiveDiscriminator(cfg)


@GENERATORS.register(title="denoising diffusion (DDPM UNet, DDIM sampling)", tags=("diffusion",))
def ddpm(cfg: GanConfig) -> tuple[nn.Module, nn.Module | None]:
    return DiffusionGenerator(cfg.size, cfg.width, cfg.steps), None


@GENERATORS.register(
    title="class-conditional diffusion (classifier-free guidance)",
    tags=("diffusion", "conditional"),
)
def cddpm(cfg: GanConfig) -> tuple[nn.Module, nn.Module | None]:
    return DiffusionGenerator(cfg.size, cfg.width, cfg.steps, cfg.classes, cfg.guidance), None


def build_generator(cfg: GanConfig) -> nn.Module:
    """The generator of `cfg.variant` (an unknown name lists the registered ones)."""
    generator, _ = GENERATORS.get(cfg.variant).build(cfg)
    return generator
