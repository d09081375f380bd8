"""Image grids as PNG files: uint8 images side by side, by the same fixed map for every image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pneumogan.core.files import atomic_path


def grid(images: np.ndarray, nrow: int = 8, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """N×H×W uint8 images tiled `nrow` to a row, with white padding (torchvision's layout)."""
    # torch and torchvision are heavy, and only the grid itself needs them
    import torch
    from torchvision.utils import make_grid

    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    return make_grid(x, nrow=nrow, padding=padding, pad_value=pad_value)[0].numpy()


def save_grid(path: Path, images: np.ndarray, nrow: int = 8) -> None:
    """Save N×H×W uint8 images as one grayscale PNG grid (no per-image contrast stretch)."""
    from PIL import Image  # only when saving

    with atomic_path(path) as tmp:
        Image.fromarray(grid(images, nrow)).save(tmp, format="PNG")
