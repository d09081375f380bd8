"""A denoising diffusion generator, `gan.variant: ddpm` (Ho et al., 2020; DDIM sampling, Song
et al., 2021), from Hugging Face diffusers' `UNet2DModel` and schedulers.

Training teaches the UNet to predict the noise added to a real image at a random one of 1000
steps (the DDPM objective, mean squared error). Sampling runs `steps` deterministic DDIM steps
(η = 0) from an image of pure noise, so a fixed noise image always gives the same picture:
the generator is then a map z → image like a GAN's, with z the N(0, I) noise image flattened
(`latent_dim` = size²). Fixed-noise grids, the held-out FID that keeps the best checkpoint and
synthesis all draw through it unchanged. Few steps keep sampling affordable on a CPU; more
steps give finer images.

The UNet has three levels (width, 2·width, 2·width channels; two downsamplings, so 28 px goes
to 14 and 7) of residual blocks, self-attention at the lowest level, and a timestep
embedding; `width` is `gan.width`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pneumogan.core.params import GanParams
from pneumogan.core.progress import progress
from pneumogan.core.transforms import ImageTransform
from pneumogan.generate.keeper import BestKeeper

TRAIN_STEPS = 1000  # noise levels of the DDPM schedule (the paper's)


def _unet(size: int, width: int) -> nn.Module:
    # diffusers is imported here, not at the top: it takes seconds to import, and only the
    # ddpm variant uses it (registering the generators must stay cheap for check_params).
    from diffusers import UNet2DModel

    if size % 4:
        raise ValueError(f"ddpm needs an image side divisible by 4 (two downsamplings), got {size}")
    return UNet2DModel(
        sample_size=size,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(width, 2 * width, 2 * width),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=math.gcd(width, 8),
        attention_head_dim=width,
    )


def _schedulers():
    from diffusers import DDIMScheduler, DDPMScheduler  # heavy, ddpm only: see _unet

    train = DDPMScheduler(num_train_timesteps=TRAIN_STEPS)
    sample = DDIMScheduler.from_config(train.config)
    return train, sample


class DiffusionGenerator(nn.Module):
    """z (N × size²) → N×1×size×size images in [-1, 1], by `steps` DDIM steps from x_T = z."""

    def __init__(self, size: int, width: int, steps: int) -> None:
        super().__init__()
        self.size, self.latent_dim, self.steps = size, size * size, steps
        self.unet = _unet(size, width)

    def noise_prediction(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t).sample

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _, scheduler = _schedulers()
        scheduler.set_timesteps(self.steps)
        x = z.view(z.shape[0], 1, self.size, self.size)
        for t in scheduler.timesteps:
            eps = self.noise_prediction(x, t.expand(x.shape[0]).to(x.device))
            x = scheduler.step(eps, t, x, eta=0.0).prev_sample
        return x.clamp(-1, 1)


def train_diffusion(
    images: np.ndarray,
    G: DiffusionGenerator,
    gan: GanParams,
    *,
    generator: torch.Generator,
    fixed_z: torch.Tensor,
    device: torch.device,
    score: Callable[[nn.Module], float],
    on_epoch: Callable[[int, dict[str, float]], None] = lambda e, m: None,
    on_samples: Callable[[int, torch.Tensor], None] = lambda e, x: None,
) -> tuple[DiffusionGenerator, int]:
    """Train `G` on `images`; return it with the weights of the best `score` and that epoch.

    `gan` is the `gan` params section: epochs, batch size, learning rate, when to sample and
    score. Batch order, noise levels and noise come from `generator`; AdamW at `gan.lr`, with the
    gradient norm clipped at 1 as is usual for diffusion models.
    """
    noise_schedule, _ = _schedulers()
    G = G.to(device)
    epochs, batch_size = gan.epochs, gan.batch_size
    opt = torch.optim.AdamW(G.parameters(), lr=gan.lr)
    real_all = ImageTransform(size=G.size).encode(images)
    n = real_all.shape[0]
    best = BestKeeper()
    bar = progress(range(1, epochs + 1), desc="train_gan (ddpm)", unit="epoch")
    for epoch in bar:
        G.train()
        total, batches = 0.0, 0
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            x0 = real_all[perm[i : i + batch_size]]
            noise = torch.randn(x0.shape, generator=generator)
            t = torch.randint(0, TRAIN_STEPS, (x0.shape[0],), generator=generator)
            noisy = noise_schedule.add_noise(x0, noise, t)
            pred = G.noise_prediction(noisy.to(device), t.to(device))
            loss = F.mse_loss(pred, noise.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(G.parameters(), 1.0)
            opt.step()
            total, batches = total + loss.item(), batches + 1
        stats = {"loss": total / batches}
        G.eval()
        if epoch % gan.eval_every == 0 or epoch == epochs:
            with torch.no_grad():
                stats["fid_heldout"] = score(G)
            best.offer(stats["fid_heldout"], epoch, G, None)
        bar.set_postfix(loss=f"{stats['loss']:.4f}")
        on_epoch(epoch, stats)
        if epoch % gan.sample_every == 0 or epoch == epochs:
            with torch.no_grad():
                on_samples(epoch, G(fixed_z.to(device)).cpu())
    G.load_state_dict(best.generator)
    return G.eval(), best.epoch
