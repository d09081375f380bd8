"""The one image transform between uint8 pixels and network values, stored in checkpoints.

Every network (classifier, reference, generator) sees pixels mapped linearly from [0, 255] to
[low, high]; the generator's tanh output comes back by the inverse map. No per-image
stretch: that would hand the classifier a cue that marks synthetic images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from pneumogan.core.errors import DataError


@dataclass(frozen=True)
class ImageTransform:
    size: int  # image side the network was built for, in px
    low: float = -1.0  # network value of pixel 0
    high: float = 1.0  # network value of pixel 255

    def encode(self, images: np.ndarray) -> torch.Tensor:
        """uint8 N×H×W → float N×1×H×W in [low, high]."""
        if images.ndim != 3 or images.shape[1:] != (self.size, self.size):
            raise DataError(
                f"images of shape {images.shape[1:]} for a network built for "
                f"{self.size}×{self.size} px"
            )
        scale = (self.high - self.low) / 255.0
        return torch.from_numpy(images).float().mul(scale).add(self.low).unsqueeze(1)

    def decode(self, x: torch.Tensor) -> np.ndarray:
        """float N×1×H×W in [low, high] → uint8 N×H×W by the same fixed map for every image."""
        scale = 255.0 / (self.high - self.low)
        pixels = (x.detach().squeeze(1).float().cpu() - self.low) * scale
        return pixels.round().clamp(0, 255).to(torch.uint8).numpy()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ImageTransform:
        return cls(**raw)
