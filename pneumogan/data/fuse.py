"""The fused training set: real images plus the minority images a balancing method adds."""

from __future__ import annotations

import numpy as np

from pneumogan.core.choices import METHODS
from pneumogan.core.errors import DataError
from pneumogan.data.balance import class_counts, minority_class, n_missing


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
    if method in ("none", "weighted"):
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
        "real_normal": int(class_counts(labels)[0]),
        "real_pneumonia": int(class_counts(labels)[1]),
        "added_minority": int(extra.shape[0]),
        "synthetic": int(extra.shape[0]) if method == "gan" else 0,
        "oversampled": int(extra.shape[0]) if method == "oversample" else 0,
        "total": int(fused_labels.shape[0]),
        "ratio": round(float(counts.min() / counts.max()), 4),
    }
    if method == "weighted":
        per_class = class_weights(labels, target_ratio)
        composition["minority_weight"] = round(float(per_class[minority]), 6)
        composition["majority_weight"] = round(float(per_class[1 - minority]), 6)
    return fused_images, fused_labels, composition


def class_weights(labels: np.ndarray, target_ratio: float) -> np.ndarray:
    """Loss weight of each class (index = label): the minority's images together weigh
    `target_ratio` times the majority's, and the mean weight per image is 1."""
    counts = class_counts(labels).astype(np.float64)
    minority = minority_class(labels)
    per_class = np.ones(2)
    per_class[minority] = target_ratio * counts[1 - minority] / counts[minority]
    return per_class * counts.sum() / (per_class * counts).sum()


def image_weights(labels: np.ndarray, target_ratio: float) -> np.ndarray:
    """Each image's loss weight under `class_weights`."""
    return class_weights(labels, target_ratio)[labels].astype(np.float32)
