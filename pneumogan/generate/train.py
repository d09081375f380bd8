"""The GAN's training loop: alternating D and G steps, checkpoint kept by a held-out score."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from pneumogan.core.params import GanParams
from pneumogan.core.progress import progress
from pneumogan.core.registry import GENERATORS
from pneumogan.core.transforms import ImageTransform
from pneumogan.generate.diffaugment import diff_augment
from pneumogan.generate.diffusion import train_diffusion
from pneumogan.generate.keeper import BestKeeper
from pneumogan.generate.nets import Discriminator, GanConfig, Generator, build_generator


def d_loss(variant: str, logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
    if "hinge" in GENERATORS.get(variant).tags:
        return F.relu(1 - logit_real).mean() + F.relu(1 + logit_fake).mean()
    return F.binary_cross_entropy_with_logits(
        logit_real, torch.ones_like(logit_real)
    ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))


def g_loss(variant: str, logit_gen: torch.Tensor) -> torch.Tensor:
    if "hinge" in GENERATORS.get(variant).tags:
        return -logit_gen.mean()
    return F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))


def train_gan(
    images: np.ndarray,
    cfg: GanConfig,
    gan: GanParams,
    *,
    generator: torch.Generator,
    fixed_z: torch.Tensor,
    device: torch.device,
    score: Callable[[Generator], float],
    on_epoch: Callable[[int, dict[str, float]], None] = lambda e, m: None,
    on_samples: Callable[[int, torch.Tensor], None] = lambda e, x: None,
) -> tuple[torch.nn.Module, Discriminator | None, int]:
    """Train G and D on `images`; return the pair with the best `score` and its epoch.

    `cfg` is the network (variant and sizes); `gan` is the `gan` section, whose training knobs
    the loop reads (epochs, batch size, Adam's rate and β1, when to sample and score, DiffAugment).
    `ddpm` trains a diffusion model instead (`pneumogan.generate.diffusion`) and returns no D.

    `score` (lower is better, e.g. a distance to held-out images) is taken every
    `eval_every` epochs and at the end. Batch order and training noise come from
    `generator`; `fixed_z` draws the sample grids.
    """
    if "diffusion" in GENERATORS.get(cfg.variant).tags:  # no discriminator, its own objective
        G, kept = train_diffusion(
            images,
            build_generator(cfg),
            gan,
            generator=generator,
            fixed_z=fixed_z,
            device=device,
            score=score,
            on_epoch=on_epoch,
            on_samples=on_samples,
        )
        return G, None, kept
    G, D = Generator(cfg).to(device), Discriminator(cfg).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=gan.lr, betas=(gan.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=gan.lr, betas=(gan.beta1, 0.999))
    real_all = ImageTransform(size=cfg.size).encode(images)
    n = real_all.shape[0]
    best = BestKeeper()

    def aug(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, gan.diffaugment, generator) if gan.diffaugment else x

    bar = progress(range(1, gan.epochs + 1), desc="train_gan", unit="epoch")
    for epoch in bar:
        G.train()
        D.train()
        sums = dict.fromkeys(("loss_d", "loss_g", "d_real", "d_fake"), 0.0)
        perm = torch.randperm(n, generator=generator)
        batches = [perm[i : i + gan.batch_size] for i in range(0, n, gan.batch_size)]
        for idx in batches:
            real = real_all[idx].to(device)
            z = torch.randn(real.shape[0], cfg.latent_dim, generator=generator).to(device)
            fake = G(z)
            logit_real, logit_fake = D(aug(real)), D(aug(fake.detach()))
            loss_d = d_loss(cfg.variant, logit_real, logit_fake)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = g_loss(cfg.variant, D(aug(fake)))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            sums["loss_d"] += loss_d.item()
            sums["loss_g"] += loss_g.item()
            sums["d_real"] += torch.sigmoid(logit_real).mean().item()
            sums["d_fake"] += torch.sigmoid(logit_fake).mean().item()
        stats = {k: v / len(batches) for k, v in sums.items()}
        G.eval()
        if epoch % gan.eval_every == 0 or epoch == gan.epochs:
            with torch.no_grad():
                stats["fid_heldout"] = score(G)
            best.offer(stats["fid_heldout"], epoch, G, D)
        bar.set_postfix(loss_d=f"{stats['loss_d']:.3f}", loss_g=f"{stats['loss_g']:.3f}")
        on_epoch(epoch, stats)
        if epoch % gan.sample_every == 0 or epoch == gan.epochs:
            with torch.no_grad():
                on_samples(epoch, G(fixed_z.to(device)).cpu())
    G.load_state_dict(best.generator)
    D.load_state_dict(best.discriminator)
    return G.eval(), D.eval(), best.epoch
