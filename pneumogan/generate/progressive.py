"""Progressive growing of GANs (ProGAN; Karras et al., 2018, "Progressive Growing of GANs for
Improved Quality, Stability, and Variation"), scaled to every MedMNIST size.

Both networks start at base×base (`levels(size)`: 7 px for 28 and 224, 4 px for 64 and 128)
and grow one resolution (2×) at a time while training: coarse structure is learned on small
images, where it is cheap and stable, before the detail is added. A new resolution is faded
in, blended with the upsampled (G) or downsampled (D) output of the level below while its
weight alpha rises from 0 to 1, so growing never shocks the networks. `growth(t, k)` is that
schedule; `grow(t)` moves a network to the share `t` of training done.

The paper's other stabilisers are here too: equalised learning rate (`EqualizedConv2d`,
`EqualizedLinear`: N(0, 1) weights scaled at run time by He's constant, so Adam's step is
the same relative size for every layer), pixel-wise feature normalisation after every conv of
G, and the minibatch standard-deviation layer in D (`minibatch_stddev`), which lets D see a
batch's lack of variety. Conditional networks (`classes` > 0) follow the paper's conditional
variant in G (a label embedding concatenated to z) and the projection discriminator
(Miyato & Koyama, 2018) in D.

Whatever the growth level, G draws and D reads full-size images (`cfg.size`): G upsamples its
current image (nearest), D average-pools its input, so the training loop, the data and the
checkpoints never see the level. The level is plain state (not a buffer, not in the state
dict): a freshly built or loaded network is at full resolution with alpha 1.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F

from pneumogan.generate.config import GanConfig, levels

HE_GAIN = math.sqrt(2.0)  # He et al., 2015: keeps activations' variance through a leaky ReLU


def growth(t: float, k: int) -> tuple[int, float]:
    """(level 0..k, alpha) at the share `t` of training: k+1 equal phases, each after the first
    fading its resolution in over its first half, then stable."""
    if t >= 1.0:
        return k, 1.0
    phase = max(t, 0.0) * (k + 1)
    level = min(int(phase), k)
    if level == 0:
        return 0, 1.0
    return level, min(1.0, 2.0 * (phase - level))


def channels(width: int, k: int) -> list[int]:
    """Channels at resolution i = 0..k: `width` at full size, doubling per level down, ≤ 16×."""
    return [min(width * 2 ** (k - i), 16 * width) for i in range(k + 1)]


class EqualizedConv2d(nn.Module):
    """A conv with N(0, 1) weights scaled at run time by gain / sqrt(fan_in); zero biases."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, padding: int = 0, gain: float = HE_GAIN
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in * kernel * kernel)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """A linear with N(0, 1) weights scaled at run time by gain / sqrt(fan_in); zero biases."""

    def __init__(self, f_in: int, f_out: int, gain: float = HE_GAIN) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(f_out, f_in))
        self.bias = nn.Parameter(torch.zeros(f_out))
        self.scale = gain / math.sqrt(f_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class PixelNorm(nn.Module):
    """Scales each pixel's feature vector to unit root-mean-square (the paper's section 4.2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """x with one more feature map: the mean over features of the std across each sample's group."""
    n, _, h, w = x.shape
    g = min(group_size, n)
    if n % g:  # groups must tile the batch; a ragged batch is one group
        g = n
    # contiguous groups: samples g·j .. g·j + g - 1 form group j; population std, as the paper
    y = x.reshape(n // g, g, *x.shape[1:])
    std = torch.sqrt(y.var(dim=1, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))
    feature = std.repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, h, w)
    return torch.cat([x, feature], dim=1)


def _conv_g(c_in: int, c_out: int) -> list[nn.Module]:
    return [EqualizedConv2d(c_in, c_out, 3, 1), nn.LeakyReLU(0.2), PixelNorm()]


def _conv_d(c_in: int, c_out: int) -> list[nn.Module]:
    return [EqualizedConv2d(c_in, c_out, 3, 1), nn.LeakyReLU(0.2)]


class _FirstBlockG(nn.Module):
    """Latent → base×base×c (a linear layer, as a base×base transposed conv would), 3×3 conv."""

    def __init__(self, f_in: int, c: int, base: int) -> None:
        super().__init__()
        self.c, self.base = c, base
        self.norm = PixelNorm()
        self.linear = EqualizedLinear(f_in, c * base * base)
        self.conv = nn.Sequential(*_conv_g(c, c))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # the paper normalises the input latent too
        h = self.linear(self.norm(z)).view(-1, self.c, self.base, self.base)
        return self.conv(self.norm(F.leaky_relu(h, 0.2)))


class ProgressiveGenerator(nn.Module):
    """z (and y when conditional) → N×1×size×size in [-1, 1], grown from base×base by `grow`."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.latent_dim, self.size, self.classes = cfg.latent_dim, cfg.size, cfg.classes
        self.base, self.k = levels(cfg.size)
        ch = channels(cfg.width, self.k)
        # the conditional variant: z concatenated with a learned embedding of the label
        self.embed = nn.Embedding(cfg.classes, cfg.latent_dim) if cfg.classes > 0 else None
        f_in = cfg.latent_dim * (2 if cfg.classes > 0 else 1)
        self.first = _FirstBlockG(f_in, ch[0], self.base)
        self.blocks = nn.ModuleList(
            [nn.Identity()]  # level 0 is the first block; keeps blocks[i] → resolution i
            + [
                nn.Sequential(nn.Upsample(scale_factor=2.0), *_conv_g(a, b), *_conv_g(b, b))
                for a, b in itertools.pairwise(ch)
            ]
        )
        # gain 1, as the paper's code: toRGB is linear, no leaky ReLU follows to halve variance
        self.to_rgb = nn.ModuleList(EqualizedConv2d(c, 1, 1, gain=1.0) for c in ch)
        self.level, self.alpha = self.k, 1.0

    def grow(self, t: float) -> None:
        """Moves to the level and fade-in of the share `t` of training (see `growth`)."""
        self.level, self.alpha = growth(t, self.k)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = z.flatten(1)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z has {z.shape[1]} features, the generator {self.latent_dim}")
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional generator needs labels y")
            z = torch.cat([z, self.embed(y)], dim=1)
        elif y is not None:
            raise ValueError("an unconditional generator takes no labels y")
        h = self.first(z)
        for i in range(1, self.level):
            h = self.blocks[i](h)
        img = self.to_rgb[self.level](self.blocks[self.level](h))
        if self.level > 0 and self.alpha < 1.0:
            old = F.interpolate(self.to_rgb[self.level - 1](h), scale_factor=2, mode="nearest")
            img = torch.lerp(old, img, self.alpha)
        if self.level < self.k:
            img = F.interpolate(img, scale_factor=2 ** (self.k - self.level), mode="nearest")
        # tanh, not a clamp: a clamped pixel past ±1 gets no gradient to bring it back; the
        # blend above is before it, so the fade-in stays continuous (and matches the other Gs)
        return torch.tanh(img)


class ProgressiveDiscriminator(nn.Module):
    """N×1×size×size (and y when conditional) → N logits, reading the current level's resolution."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.size, self.classes = cfg.size, cfg.classes
        self.base, self.k = levels(cfg.size)
        ch = channels(cfg.width, self.k)
        self.from_rgb = nn.ModuleList(
            nn.Sequential(EqualizedConv2d(1, c, 1), nn.LeakyReLU(0.2)) for c in ch
        )
        self.blocks = nn.ModuleList(
            [nn.Identity()]  # resolution 0 ends in `last`; keeps blocks[i] → resolution i
            + [
                nn.Sequential(*_conv_d(b, b), *_conv_d(b, a), nn.AvgPool2d(2))
                for a, b in itertools.pairwise(ch)
            ]
        )
        c0 = ch[0]
        # after the minibatch stddev feature: 3×3 conv, a base×base conv to c0 features
        self.last = nn.Sequential(
            *_conv_d(c0 + 1, c0), EqualizedConv2d(c0, c0, self.base), nn.LeakyReLU(0.2)
        )
        self.linear = EqualizedLinear(c0, 1, gain=1.0)  # the logit: no nonlinearity follows
        # projection (Miyato & Koyama, 2018): logit += <embed(y), features>, scaled like a
        # gain-1 equalised linear over the features
        self.embed = nn.Embedding(cfg.classes, c0) if cfg.classes > 0 else None
        self.embed_scale = 1.0 / math.sqrt(c0)
        self.level, self.alpha = self.k, 1.0

    def grow(self, t: float) -> None:
        """Moves to the level and fade-in of the share `t` of training (see `growth`)."""
        self.level, self.alpha = growth(t, self.k)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None and y is None:
            raise ValueError("a conditional discriminator needs labels y")
        if self.embed is None and y is not None:
            raise ValueError("an unconditional discriminator takes no labels y")
        factor = 2 ** (self.k - self.level)
        if factor > 1:
            x = F.avg_pool2d(x, factor)
        h = self.blocks[self.level](self.from_rgb[self.level](x))
        if self.level > 0 and self.alpha < 1.0:
            old = self.from_rgb[self.level - 1](F.avg_pool2d(x, 2))
            h = torch.lerp(old, h, self.alpha)
        for i in range(self.level - 1, 0, -1):
            h = self.blocks[i](h)
        features = self.last(minibatch_stddev(h)).flatten(1)
        logit = self.linear(features).squeeze(1)
        if self.embed is not None:
            logit = logit + self.embed_scale * (self.embed(y) * features).sum(dim=1)
        return logit
