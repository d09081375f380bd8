"""Seeding, device choice and progress bars shared by the training stages."""

from __future__ import annotations

import logging
import random
import sys

import numpy as np
import torch
from tqdm import tqdm


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, ask for deterministic kernels; return a CPU generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """'auto' means CUDA, then MPS, then CPU; a named device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available; use 'auto' or 'cpu'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device 'mps' requested but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def progress(iterable, **kwargs) -> tqdm:
    """A tqdm bar that stays quiet when stderr is not a terminal (CI, dvc exp --queue logs)."""
    return tqdm(iterable, disable=not sys.stderr.isatty(), leave=False, **kwargs)


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
