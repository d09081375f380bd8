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

A class-conditional generator (`classes` > 0) adds diffusers' learned class embedding to the
timestep embedding and draws `G(z, y)` with classifier-free guidance (Ho & Salimans, 2022):
one network learns both the class-conditional and the unconditional noise prediction, because
training replaces each image's label by an extra "null" label (index `classes`) with
probability `COND_DROPOUT`; sampling mixes the two predictions by the `guidance` scale.

Training keeps an exponential moving average of the weights (`gan.ema`, `EMA`); scores, sample
grids and the kept checkpoint all come from the average (a decay of 0 is the raw weights).
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
from pneumogan.generate.ema import EMA
from pneumogan.generate.keeper import BestKeeper

TRAIN_STEPS = 1000  # noise levels of the DDPM schedule (the paper's)
COND_DROPOUT = 0.1  # chance a training label is replaced by the null label (the paper's p_uncond)


def _unet(size: int, width: int, classes: int = 0) -> nn.Module:
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
        # one embedding row per class plus the null label of classifier-free guidance
        num_class_embeds=classes + 1 if classes else None,
    )


def _schedulers():
    from diffusers import DDIMScheduler, DDPMScheduler  # heavy, ddpm only: see _unet

    train = DDPMScheduler(num_train_timesteps=TRAIN_STEPS)
    sample = DDIMScheduler.from_config(train.config)
    return train, sample


class DiffusionGenerator(nn.Module):
    """z (N × size²) → N×1×size×size images in [-1, 1], by `steps` DDIM steps from x_T = z.

    With `classes` > 0 the UNet is class-conditional and draws `G(z, y)`, `y` the N labels in
    [0, classes) (or `classes`, the null label: an unconditional draw). `guidance` is the
    classifier-free guidance scale w of eps = eps_null + w · (eps_y − eps_null): 0 ignores the
    class (the unconditional model), 1 is the class-conditional model alone, above 1 pushes
    further towards the class (sharper, more typical, less varied images). It is an attribute,
    not a weight, so it can be changed on a trained network.
    """

    def __init__(
        self, size: int, width: int, steps: int, classes: int = 0, guidance: float = 1.0
    ) -> None:
        super().__init__()
        if classes < 0 or guidance < 0:
            raise ValueError(f"classes and guidance must be >= 0, got {classes} and {guidance}")
        self.size, self.latent_dim, self.steps = size, size * size, steps
        self.classes, self.guidance = classes, guidance
        self.unet = _unet(size, width, classes)

    @property
    def null_label(self) -> int:
        """The label that stands for "no class" in a conditional net (the last embedding row)."""
        return self.classes

    def noise_prediction(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The UNet's estimate of the noise in `x` at steps `t`, given labels `y` if conditional."""
        return self.unet(x, t, class_labels=y).sample

    def _check_labels(self, z: torch.Tensor, y: torch.Tensor | None) -> None:
        """Raise ValueError unless `y` fits: absent when unconditional, one valid label per z."""
        if not self.classes:
            if y is not None:
                raise ValueError("an unconditional diffusion generator draws G(z), without labels")
            return
        if y is None:
            raise ValueError(f"a conditional diffusion generator ({self.classes} classes) needs y")
        if y.shape != (z.shape[0],):
            raise ValueError(f"y must hold one label per z: shape ({z.shape[0]},), got {y.shape}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > self.null_label):
            raise ValueError(f"labels must lie in [0, {self.null_label}], the last one null")

    def _guided_noise(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        null = torch.full_like(y, self.null_label)
        # scales 0 and 1 need only one of the two predictions: half the work, and exactly the
        # unconditional or conditional model rather than a mix that merely weighs one by zero
        if self.guidance == 0:
            return self.noise_prediction(x, t, null)
        if self.guidance == 1:
            return self.noise_prediction(x, t, y)
        eps_y, eps_null = self.noise_prediction(
            torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])
        ).chunk(2)
        return eps_null + self.guidance * (eps_y - eps_null)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Draw one image per row of `z` (and label of `y`, which a conditional net requires)."""
        self._check_labels(z, y)
        _, scheduler = _schedulers()
        scheduler.set_timesteps(self.steps)
        x = z.view(z.shape[0], 1, self.size, self.size)
        if y is not None:
            y = y.to(device=x.device, dtype=torch.long)
        for t in scheduler.timesteps:
            t_batch = t.expand(x.shape[0]).to(x.device)
            if y is None:
                eps = self.noise_prediction(x, t_batch)
            else:
                eps = self._guided_noise(x, t_batch, y)
            x = scheduler.step(eps, t, x, eta=0.0).prev_sample
        return x.clamp(-1, 1)


def _label_tensor(labels: np.ndarray | None, n: int, classes: int) -> torch.Tensor | None:
    """`labels` as a LongTensor, checked against the images and the generator's classes."""
    if not classes:
        if labels is not None:
            raise ValueError("labels given, but the diffusion generator is unconditional")
        return None
    if labels is None:
        raise ValueError(f"a conditional diffusion generator ({classes} classes) needs labels")
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{y.shape[0]} labels for {n} images")
    if n and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise ValueError(f"labels must lie in [0, {classes})")
    return y


def train_diffusion(
    images: np.ndarray,
    G: DiffusionGenerator,
    gan: GanParams,
    *,
    labels: np.ndarray | None = None,
    generator: torch.Generator,
    fixed_z: torch.Tensor,
    device: torch.device,
    score: Callable[[nn.Module], float],
    on_epoch: Callable[[int, dict[str, float]], None] = lambda e, m: None,
    on_samples: Callable[[int, torch.Tensor], None] = lambda e, x: None,
) -> tuple[DiffusionGenerator, int]:
    """Train `G` on `images`; return it with the weights of the best `score` and that epoch.

    `gan` is the `gan` params section: epochs, batch size, learning rate, EMA decay, when to
    sample and score. Batch order, noise levels, noise and label dropout come from `generator`;
    AdamW at `gan.lr`, with the gradient norm clipped at 1 as is usual for diffusion models.

    A conditional `G` (`G.classes` > 0) needs `labels`, one per image in [0, classes); each
    training example's label becomes the null label with probability `COND_DROPOUT`, so the
    net also learns the unconditional prediction that guidance needs. Its sample grids draw
    `fixed_z` with labels cycling over the classes.

    `score` and `on_samples` see the EMA network (`EMA(G, gan.ema)`), called `G(z)` or, when
    conditional, `G(z, y)`; the kept checkpoint and the returned `G` carry its weights.
    """
    noise_schedule, _ = _schedulers()
    G = G.to(device)
    epochs, batch_size = gan.epochs, gan.batch_size
    opt = torch.optim.AdamW(G.parameters(), lr=gan.lr)
    ema = EMA(G, gan.ema)
    real_all = ImageTransform(size=G.size).encode(images)
    n = real_all.shape[0]
    labels_all = _label_tensor(labels, n, G.classes)
    fixed_y = (torch.arange(fixed_z.shape[0]) % G.classes).to(device) if G.classes else None
    best = BestKeeper()
    bar = progress(range(1, epochs + 1), desc=f"train_gan ({gan.variant})", unit="epoch")
    for epoch in bar:
        G.train()
        total, batches = 0.0, 0
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            x0 = real_all[idx]
            noise = torch.randn(x0.shape, generator=generator)
            t = torch.randint(0, TRAIN_STEPS, (x0.shape[0],), generator=generator)
            noisy = noise_schedule.add_noise(x0, noise, t)
            y = None
            if labels_all is not None:  # drawn only when conditional: ddpm's stream is as before
                drop = torch.rand(idx.shape[0], generator=generator) < COND_DROPOUT
                y = torch.where(drop, G.null_label, labels_all[idx]).to(device)
            pred = G.noise_prediction(noisy.to(device), t.to(device), y)
            loss = F.mse_loss(pred, noise.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(G.parameters(), 1.0)
            opt.step()
            ema.update()
            total, batches = total + loss.item(), batches + 1
        stats = {"loss": total / batches}
        G.eval()
        averaged = ema.module.eval()
        if epoch % gan.eval_every == 0 or epoch == epochs:
            with torch.no_grad():
                stats["fid_heldout"] = score(averaged)
            best.offer(stats["fid_heldout"], epoch, averaged, None)
        bar.set_postfix(loss=f"{stats['loss']:.4f}")
        on_epoch(epoch, stats)
        if epoch % gan.sample_every == 0 or epoch == epochs:
            with torch.no_grad():
                drawn = averaged(fixed_z.to(device), fixed_y)
            on_samples(epoch, drawn.cpu())
    G.load_state_dict(best.generator)
    return G.eval(), best.epoch
