"""The best checkpoint so far of a generator in training, by a held-out score (lower is better)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from torch import nn


@dataclass
class BestKeeper:
    """The best (lowest) score seen so far, its epoch and a copy of both networks' weights."""

    score: float = math.inf
    epoch: int = 0
    generator: dict = field(default_factory=dict)
    discriminator: dict = field(default_factory=dict)

    def offer(self, score: float, epoch: int, G: nn.Module, D: nn.Module | None) -> None:
        """Keep this epoch's weights if `score` is the best yet (a diffusion model has no D)."""
        # The first offer is kept whatever it scores, so there is always a checkpoint; a NaN
        # (a diverged network) never compares lower, and any finite score replaces a NaN.
        replaces_nan = math.isnan(self.score) and not math.isnan(score)
        if not self.generator or score < self.score or replaces_nan:
            self.score, self.epoch = score, epoch
            self.generator = copy.deepcopy(G.state_dict())
            self.discriminator = copy.deepcopy(D.state_dict()) if D is not None else {}
