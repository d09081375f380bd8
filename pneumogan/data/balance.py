"""Class-balance arithmetic: which class is the minority and how many images it lacks."""

from __future__ import annotations

import math

import numpy as np

from pneumogan.core.choices import LABELS
from pneumogan.core.errors import DataError


def class_counts(labels: np.ndarray) -> np.ndarray:
    return np.bincount(labels, minlength=len(LABELS))


def minority_class(labels: np.ndarray) -> int:
    """The class with fewer samples (found from the data, never assumed)."""
    counts = class_counts(labels)
    if counts.min() == 0:
        raise DataError(f"training labels hold one class only (counts {counts.tolist()})")
    return int(np.argmin(counts))


def n_missing(labels: np.ndarray, target_ratio: float) -> int:
    """Minority images to add so that minority / majority reaches `target_ratio`."""
    counts = class_counts(labels)
    return max(0, math.ceil(target_ratio * counts.max() - 1e-9) - int(counts.min()))
