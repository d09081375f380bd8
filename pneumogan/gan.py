"""DCGAN (Radford et al., 2016) for the minority class, scaled to every MedMNIST size.

Two variants: `dcgan` (batch-norm discriminator, non-saturating loss) and `sn_hinge`
(spectral-norm discriminator without batch norm, hinge loss; Miyato et al., 2018).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pneumogan.io import CHECKPOINT_ERRORS, DataError, atomic_path
from pneumogan.runtime import progress


@dataclass(frozen=True)
class GanConfig:
    """Everything needed to rebuild the networks; saved inside the checkpoint."""

    size: int
    latent_dim: int
    width: int
    variant: str = "dcgan"  # checkpoints from before variants existed are DCGANs


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


VARIANTS = ("dcgan", "sn_hinge")


class Discriminator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        if cfg.variant not in VARIANTS:
            raise ValueError(f"GAN variant {cfg.variant!r}: must be one of {list(VARIANTS)}")
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


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W → float N×1×H×W in [-1, 1], the generator's output range."""
    return torch.from_numpy(images).float().div(127.5).sub(1.0).unsqueeze(1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Generator output in [-1, 1] → uint8 N×H×W by the same fixed map for every image."""
    return ((x.squeeze(1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def d_loss(variant: str, logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
    if variant == "sn_hinge":
        return F.relu(1 - logit_real).mean() + F.relu(1 + logit_fake).mean()
    return F.binary_cross_entropy_with_logits(
        logit_real, torch.ones_like(logit_real)
    ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))


def g_loss(variant: str, logit_gen: torch.Tensor) -> torch.Tensor:
    if variant == "sn_hinge":
        return -logit_gen.mean()
    return F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))


def train_gan(
    images: np.ndarray,
    cfg: GanConfig,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    beta1: float,
    sample_every: int,
    generator: torch.Generator,
    device: torch.device,
    on_epoch: Callable[[int, dict[str, float]], None] = lambda e, m: None,
    on_samples: Callable[[int, torch.Tensor], None] = lambda e, x: None,
    score: Callable[[Generator], float] | None = None,
    eval_every: int = 1,
) -> tuple[Generator, Discriminator, int]:
    """Train G and D; report losses, D(x) and D(G(z)) (as probabilities) per epoch.

    With `score` (lower is better, e.g. a distance to held-out images), G is scored every
    `eval_every` epochs and at the end, and the best-scoring networks are returned with their
    epoch; without it, the last ones.
    """
    G, D = Generator(cfg).to(device), Discriminator(cfg).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(beta1, 0.999))
    real_all = to_unit(images)
    n = real_all.shape[0]
    fixed_z = torch.randn(64, cfg.latent_dim, generator=generator).to(device)
    best: tuple[float, int, tuple[dict, dict] | None] = (math.inf, 0, None)
    bar = progress(range(1, epochs + 1), desc="train_gan", unit="epoch")
    for epoch in bar:
        G.train()
        D.train()
        sums = dict.fromkeys(("loss_d", "loss_g", "d_real", "d_fake"), 0.0)
        perm = torch.randperm(n, generator=generator)
        batches = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
        for idx in batches:
            real = real_all[idx].to(device)
            z = torch.randn(real.shape[0], cfg.latent_dim, generator=generator).to(device)
            fake = G(z)
            logit_real, logit_fake = D(real), D(fake.detach())
            loss_d = d_loss(cfg.variant, logit_real, logit_fake)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = g_loss(cfg.variant, D(fake))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            sums["loss_d"] += loss_d.item()
            sums["loss_g"] += loss_g.item()
            sums["d_real"] += torch.sigmoid(logit_real).mean().item()
            sums["d_fake"] += torch.sigmoid(logit_fake).mean().item()
        stats = {k: v / len(batches) for k, v in sums.items()}
        G.eval()
        if score is not None and (epoch % eval_every == 0 or epoch == epochs):
            with torch.no_grad():
                stats["fid_heldout"] = score(G)
            if stats["fid_heldout"] < best[0]:
                best = (
                    stats["fid_heldout"],
                    epoch,
                    copy.deepcopy((G.state_dict(), D.state_dict())),
                )
        bar.set_postfix(loss_d=f"{stats['loss_d']:.3f}", loss_g=f"{stats['loss_g']:.3f}")
        on_epoch(epoch, stats)
        if epoch % sample_every == 0 or epoch == epochs:
            with torch.no_grad():
                on_samples(epoch, G(fixed_z).cpu())
    if score is None:
        return G, D, epochs
    G.load_state_dict(best[2][0])
    D.load_state_dict(best[2][1])
    return G.eval(), D, best[1]


def save_checkpoint(
    path: Path, G: Generator, D: Discriminator, cfg: GanConfig, epoch: int, label: int
) -> None:
    """Networks, the config that built them, the epoch and the class they imitate."""
    with atomic_path(path) as tmp:
        torch.save(
            {
                "config": asdict(cfg),
                "epoch": epoch,
                "label": label,
                "generator": G.state_dict(),
                "discriminator": D.state_dict(),
            },
            tmp,
        )


def load_generator(path: Path, device: torch.device | str = "cpu") -> tuple[Generator, dict]:
    """Rebuild the generator from its checkpoint; return it with the checkpoint's label, epoch
    and config."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        G = Generator(GanConfig(**ckpt["config"])).to(device)
        G.load_state_dict(ckpt["generator"])
    except CHECKPOINT_ERRORS as err:
        raise DataError(
            f"{path}: not a usable GAN checkpoint ({type(err).__name__}: {err}); "
            "rerun train_gan (dvc repro -f train_gan)"
        ) from None
    return G.eval(), {"label": int(ckpt["label"]), "epoch": int(ckpt["epoch"]), **ckpt["config"]}


@torch.no_grad()
def synthesize(
    G: Generator,
    n: int,
    *,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Draw `n` uint8 images from G; the noise comes from `generator` on the CPU."""
    chunks = [np.zeros((0, G.size, G.size), dtype=np.uint8)]
    for start in progress(range(0, n, batch_size), desc="synthesize", unit="batch"):
        z = torch.randn(min(batch_size, n - start), G.latent_dim, generator=generator)
        chunks.append(to_uint8(G(z.to(device))))
    return np.concatenate(chunks)
