"""Class balance: which class is the minority, how many images it lacks, and the fused set."""

from __future__ import annotations

import math

import numpy as np

from pneumogan.io import LABELS, DataError

METHODS = ("gan", "oversample", "none")


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


def fuse(
    train: tuple[np.ndarray, np.ndarray],
    synthetic: np.ndarray,
    *,
    method: str,
    target_ratio: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Real training images plus the minority images `method` adds; returns the composition too."""
    images, labels = train
    minority = minority_class(labels)
    need = n_missing(labels, target_ratio)
    if method == "none":
        extra = images[:0]
    elif method == "oversample":
        extra = images[rng.choice(np.flatnonzero(labels == minority), size=need, replace=True)]
    elif method == "gan":
        if synthetic.shape[0] < need:
            raise DataError(
                f"{synthetic.shape[0]} synthetic images for {need} needed; rerun synthesize "
                "(dvc repro synthesize) with the same fuse.target_ratio"
            )
        extra = synthetic[:need]
    else:
        raise ValueError(f"fuse.method {method!r}: must be one of {list(METHODS)}")
    fused_images = np.concatenate([images, extra])
    fused_labels = np.concatenate([labels, np.full(extra.shape[0], minority, dtype=np.int64)])
    counts = class_counts(fused_labels)
    composition = {
        "minority_class": minority,
        "real_normal": int(class_counts(labels)[0]),
        "real_pneumonia": int(class_counts(labels)[1]),
        "added_minority": int(extra.shape[0]),
        "synthetic": int(extra.shape[0]) if method == "gan" else 0,
        "oversampled": int(extra.shape[0]) if method == "oversample" else 0,
        "total": int(fused_labels.shape[0]),
        "ratio": round(float(counts.min() / counts.max()), 4),
    }
    return fused_images, fused_labels, composition
