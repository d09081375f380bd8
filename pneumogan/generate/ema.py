"""An exponential moving average of a generator's weights (`gan.ema`), by torch's AveragedModel.

Sampling from an average of the last few hundred steps' weights, rather than the last step's,
steadies a GAN's or a diffusion model's images (Karras et al., 2018; Ho et al., 2020). The
decay warms up as (1 + n) / (10 + n) after n updates, so a short training (a capped split
gives a few dozen steps) is not dominated by the initial weights. Buffers (batch-norm
statistics) are averaged too. A decay of 0 keeps exactly the raw weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def warmed_decay(decay: float, updates: int) -> float:
    """The decay used at update `updates` (0-based): `decay`, lower while the average is young."""
    return min(decay, (1 + updates) / (10 + updates))


class EMA:
    """`module`: the averaged copy of `net`; `update()` after each optimiser step."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.decay, self.updates = decay, 0

        def average(avg: torch.Tensor, new: torch.Tensor, _n: torch.Tensor) -> torch.Tensor:
            d = warmed_decay(self.decay, self.updates)
            return d * avg + (1 - d) * new

        self.averaged = AveragedModel(net, avg_fn=average, use_buffers=True)
        self.net = net

    @property
    def module(self) -> nn.Module:
        """The averaged network (the one to score, sample and save)."""
        return self.averaged.module

    def update(self) -> None:
        self.averaged.update_parameters(self.net)
        self.updates += 1
