"""The official train/val/test splits in a canonical, content-defined order; optional caps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pneumogan.contract import SPLITS, read_arrays, validate_medmnist


def _row_keys(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    return [
        hashlib.sha256(bytes([int(y)]) + img.tobytes()).digest()
        for img, y in zip(images, labels, strict=True)
    ]


def canonical_order(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices that sort samples by a hash of their content, independent of the file's order."""
    keys = _row_keys(images, labels)
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def cap_per_class(
    labels: np.ndarray, cap: int | None, rng: np.random.Generator, keep_ratio: bool = False
) -> np.ndarray:
    """Indices of a capped subset, drawn with `rng`, kept in input order.

    Without `keep_ratio` every class keeps at most `cap` samples (small caps balance the
    classes). With it the smallest class keeps at most `cap` and every other class the same
    multiple of that as in the full data, so the imbalance survives the cap.
    """
    if cap is None:
        return np.arange(labels.shape[0])
    classes, counts = np.unique(labels, return_counts=True)
    minority = counts.min()
    keep = []
    for cls, n in zip(classes, counts, strict=True):
        limit = round(min(cap, minority) * n / minority) if keep_ratio else cap
        idx = np.flatnonzero(labels == cls)
        keep.append(rng.choice(idx, size=min(limit, n), replace=False))
    return np.sort(np.concatenate(keep))


def split_raw(
    raw: Path,
    size: int | None,
    train_per_class: int | None,
    rng: np.random.Generator,
    keep_ratio: bool = False,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Official train/val/test of a MedMNIST file, canonically ordered, train maybe capped."""
    validate_medmnist(raw, size)
    arrays = read_arrays(raw)
    out = {}
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].reshape(-1)
        order = canonical_order(images, labels)
        images, labels = images[order], labels[order].astype(np.int64)
        if split == "train":
            keep = cap_per_class(labels, train_per_class, rng, keep_ratio)
            images, labels = images[keep], labels[keep]
        out[split] = (images, labels)
    return out
