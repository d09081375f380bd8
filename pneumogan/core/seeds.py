"""Independent random streams, one per purpose, all derived from the top-level `seed`.

`numpy.random.SeedSequence(seed, spawn_key=(k,))` gives statistically independent streams,
so the noise that picks the GAN checkpoint is never the noise that draws the images fuse adds.
"""

from __future__ import annotations

import random

import numpy as np

# purpose -> spawn key. Append new purposes; never renumber (that would change every result).
PURPOSES = {
    "split": 0,  # which real training images a cap keeps
    "reference_init": 1,  # weights of the reference network
    "reference_train": 2,  # its batch order
    "gan_init": 3,  # weights of G and D
    "gan_train": 4,  # batch order and training noise
    "gan_fixed_noise": 5,  # the sample grids' noise, the same at every epoch
    "gan_selection_noise": 6,  # the noise of the held-out FID that picks the checkpoint
    "synthesis": 7,  # the noise of the images fuse adds
    "quality": 8,  # probe subsets and KID subsets of the quality report
    "fuse": 9,  # which real minority images oversampling repeats
    "train_init": 10,  # weights of the classifier
    "train": 11,  # batch order, augmentation and mixup
    "evaluate": 12,  # bootstrap resamples
    "carve": 13,  # which training patients become a missing or small val or test split
    "eda": 14,  # which training images the sample grids show
    "synthesis_probe": 15,  # a conditional generator's probe images of the other classes
    "quality_per_class": 16,  # probe and KID subsets of its per-class quality
    "evaluate_ood": 17,  # the non-X-ray images the input gate is scored on
}


def sequence(seed: int, purpose: str) -> np.random.SeedSequence:
    if purpose not in PURPOSES:
        raise KeyError(f"unknown random stream {purpose!r}; known: {sorted(PURPOSES)}")
    return np.random.SeedSequence(seed, spawn_key=(PURPOSES[purpose],))


def numpy_rng(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(sequence(seed, purpose))


def int_seed(seed: int, purpose: str) -> int:
    """A 63-bit integer seed of the stream (for torch generators and other libraries)."""
    return int(sequence(seed, purpose).generate_state(1, np.uint64)[0] >> np.uint64(1))


def torch_generator(seed: int, purpose: str):
    """A CPU torch.Generator on the stream; draws on the CPU do not depend on the device."""
    import torch  # heavy: the data stages use these streams without loading torch

    return torch.Generator().manual_seed(int_seed(seed, purpose))


def seed_everything(seed: int, purpose: str) -> None:
    """Seed the global generators (weight init uses torch's) and ask for deterministic kernels."""
    import torch  # heavy: see torch_generator

    s = int_seed(seed, purpose)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
