"""The GAN's training loop: alternating D and G steps, checkpoint kept by a held-out score.

One loop trains every adversarial generator; the registry's tags say how: `hinge` (hinge
loss), `wgan_gp` (the Wasserstein loss with a gradient penalty and ProGAN's drift term),
otherwise the non-saturating loss; `conditional` (G and D see each image's class; the fakes
of a step get the classes of that step's real images, so D compares like with like);
`progressive` (the networks grow with the share of training done, and only a fully grown
generator is scored, so the kept checkpoint always draws at full resolution). `diffusion`
generators have their own loop (`pneumogan.generate.diffusion`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pneumogan.core.params import GanParams
from pneumogan.core.progress import progress
from pneumogan.core.registry import GENERATORS
from pneumogan.core.transforms import ImageTransform
from pneumogan.generate.config import GanConfig, levels
from pneumogan.generate.diffaugment import diff_augment
from pneumogan.generate.diffusion import train_diffusion
from pneumogan.generate.ema import EMA
from pneumogan.generate.keeper import BestKeeper
from pneumogan.generate.nets import build_generator
from pneumogan.generate.progressive import growth

GP_WEIGHT = 10.0  # λ of the gradient penalty (Gulrajani et al., 2017; ProGAN's value)
DRIFT_WEIGHT = 0.001  # ε of ProGAN's drift term, which keeps D's outputs near 0


def d_loss(variant: str, logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
    """D's loss without the gradient penalty (see `gradient_penalty`)."""
    tags = GENERATORS.get(variant).tags
    if "wgan_gp" in tags:
        drift = DRIFT_WEIGHT * (logit_real**2).mean()
        return logit_fake.mean() - logit_real.mean() + drift
    if "hinge" in tags:
        return F.relu(1 - logit_real).mean() + F.relu(1 + logit_fake).mean()
    return F.binary_cross_entropy_with_logits(
        logit_real, torch.ones_like(logit_real)
    ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))


def g_loss(variant: str, logit_gen: torch.Tensor) -> torch.Tensor:
    if {"hinge", "wgan_gp"} & GENERATORS.get(variant).tags:
        return -logit_gen.mean()
    return F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """λ·(‖∇D(x̂)‖ − 1)² at random points x̂ between real and fake images (WGAN-GP)."""
    u = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
    mixed = (u * real + (1 - u) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return GP_WEIGHT * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def class_cycle(n: int, classes: int) -> torch.Tensor | None:
    """Labels 0, 1, …, 0, 1, … for `n` sample-grid images of a conditional generator."""
    return torch.arange(n) % classes if classes else None


def call(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """`net(x, y)` for a conditional network, `net(x)` for an unconditional one."""
    return net(x) if y is None else net(x, y)


def train_gan(
    images: np.ndarray,
    cfg: GanConfig,
    gan: GanParams,
    *,
    labels: np.ndarray | None = None,
    generator: torch.Generator,
    fixed_z: torch.Tensor,
    device: torch.device,
    score: Callable[[nn.Module], float],
    on_epoch: Callable[[int, dict[str, float]], None] = lambda e, m: None,
    on_samples: Callable[[int, torch.Tensor], None] = lambda e, x: None,
) -> tuple[nn.Module, nn.Module | None, int]:
    """Train G and D on `images`; return the pair with the best `score` and its epoch.

    `cfg` is the network (variant and sizes); `gan` is the `gan` section, whose training knobs
    the loop reads (epochs, batch size, Adam's rate and β1, when to sample and score,
    DiffAugment, the EMA decay). A conditional generator (`cfg.classes` > 0) needs `labels`,
    one per image. Diffusion generators train in their own loop and return no D.

    `score` (lower is better, e.g. a distance to held-out images) is taken every
    `eval_every` epochs and at the end, on the EMA generator (the raw one when `gan.ema` is
    0). Batch order and training noise come from `generator`; `fixed_z` draws the sample grids
    (a conditional generator's cycle through the classes).
    """
    if (labels is None) == (cfg.classes > 0):
        need = "needs" if cfg.classes else "takes no"
        raise ValueError(f"generator {cfg.variant} with classes={cfg.classes} {need} labels")
    tags = GENERATORS.get(cfg.variant).tags
    if "diffusion" in tags:  # no discriminator, its own objective
        G, kept = train_diffusion(
            images,
            build_generator(cfg),
            gan,
            labels=labels,
            generator=generator,
            fixed_z=fixed_z,
            device=device,
            score=score,
            on_epoch=on_epoch,
            on_samples=on_samples,
        )
        return G, None, kept
    G, D = GENERATORS.get(cfg.variant).build(cfg)
    G, D = G.to(device), D.to(device)
    ema = EMA(G, gan.ema)
    opt_g = torch.optim.Adam(G.parameters(), lr=gan.lr, betas=(gan.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=gan.lr, betas=(gan.beta1, 0.999))
    real_all = ImageTransform(size=cfg.size).encode(images)
    y_all = torch.as_tensor(labels, dtype=torch.long) if labels is not None else None
    fixed_y = class_cycle(len(fixed_z), cfg.classes)
    n = real_all.shape[0]
    steps_per_epoch = -(-n // gan.batch_size)
    total_steps, step = gan.epochs * steps_per_epoch, 0
    best = BestKeeper()

    def aug(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, gan.diffaugment, generator) if gan.diffaugment else x

    def grow(t: float) -> bool:
        """Set the networks' growth for training share `t`; is G fully grown?"""
        if "progressive" not in tags:
            return True
        for net in (G, ema.module, D):
            net.grow(t)
        k = levels(cfg.size)[1]
        return growth(t, k) == (k, 1.0)

    bar = progress(range(1, gan.epochs + 1), desc=f"train_gan ({cfg.variant})", unit="epoch")
    for epoch in bar:
        G.train()
        D.train()
        sums = dict.fromkeys(("loss_d", "loss_g", "d_real", "d_fake"), 0.0)
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, gan.batch_size):
            grow(step / total_steps)
            idx = perm[i : i + gan.batch_size]
            real = real_all[idx].to(device)
            y = y_all[idx].to(device) if y_all is not None else None
            z = torch.randn(real.shape[0], cfg.latent_dim, generator=generator).to(device)
            fake = call(G, z, y)
            seen_real, seen_fake = aug(real), aug(fake.detach())
            logit_real, logit_fake = call(D, seen_real, y), call(D, seen_fake, y)
            loss_d = d_loss(cfg.variant, logit_real, logit_fake)
            if "wgan_gp" in tags:
                critic = functools.partial(call, D, y=y)
                loss_d = loss_d + gradient_penalty(critic, seen_real, seen_fake, generator)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = g_loss(cfg.variant, call(D, aug(fake), y))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            ema.update()
            step += 1
            sums["loss_d"] += loss_d.item()
            sums["loss_g"] += loss_g.item()
            sums["d_real"] += torch.sigmoid(logit_real).mean().item()
            sums["d_fake"] += torch.sigmoid(logit_fake).mean().item()
        stats = {k: v / steps_per_epoch for k, v in sums.items()}
        kept_net = ema.module.eval()
        grown = grow(step / total_steps)
        if grown and (epoch % gan.eval_every == 0 or epoch == gan.epochs):
            with torch.no_grad():
                stats["fid_heldout"] = score(kept_net)
            best.offer(stats["fid_heldout"], epoch, kept_net, D)
        bar.set_postfix(loss_d=f"{stats['loss_d']:.3f}", loss_g=f"{stats['loss_g']:.3f}")
        on_epoch(epoch, stats)
        if epoch % gan.sample_every == 0 or epoch == gan.epochs:
            with torch.no_grad():
                y = fixed_y.to(device) if fixed_y is not None else None
                on_samples(epoch, call(kept_net, fixed_z.to(device), y).cpu())
    G.load_state_dict(best.generator)
    D.load_state_dict(best.discriminator)
    grow(1.0)
    return G.eval(), D.eval(), best.epoch
