"""Train/val/test in a canonical, content-defined order; missing splits carved; optional caps.

A raw file holds the splits its source has. A split that is missing or smaller than
`split.min_images` (Kermany's val holds 16 images) is carved out of train: the small split's
images go back to train first, then about `split.carve_fraction` of train's patients, drawn
stratified by class, become the split (scikit-learn's StratifiedGroupKFold, one fold of
round(1 / carve_fraction)). Test is carved before val. A patient is never in two carved splits;
a source without patient ids (MedMNIST files) carves image by image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pneumogan.core.errors import DataError
from pneumogan.data.contract import SPLITS, read_arrays, validate_split


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


def find_raw(directory: Path) -> Path:
    """The one npz the download stage wrote into `directory`."""
    found = sorted(Path(directory).glob("*.npz"))
    if len(found) != 1:
        raise DataError(
            f"{directory}: expected one .npz, found {len(found)}; this is the download stage's "
            "output: delete it and rerun download (dvc repro -f download)"
        )
    return found[0]


IMAGE_ID = "image:"  # prefix of the ids of a source without patients: one per distinct image


def _fold(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of about `fraction` of the groups, stratified by class."""
    # scikit-learn's model_selection (and scipy under it) stays here: seconds to import, needed
    # only to carve a split, while stages/split.py imports this module before parsing its args.
    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = max(2, round(1 / fraction))
    if np.unique(groups).size < n_splits:
        raise DataError(
            f"cannot carve a split: train holds {np.unique(groups).size} patients, fewer than "
            f"the {n_splits} folds split.carve_fraction = {fraction} needs; add images or give "
            "the split its own folder"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(folds.split(np.zeros(len(labels)), labels, groups))
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return mask


def _ordered(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = canonical_order(part["images"], part["labels"])
    return {k: v[order] for k, v in part.items()}


def read_raw(raw: Path, size: int | None) -> dict[str, dict[str, np.ndarray]]:
    """The splits a raw file holds: images, labels and patients (one id per image when absent)."""
    arrays = read_arrays(raw)
    if "train_images" not in arrays or "train_labels" not in arrays:
        raise DataError(
            f"{raw}: no train_images/train_labels (has {sorted(arrays)}); a raw file needs a "
            "training split. Rerun download (dvc repro download)"
        )
    out = {}
    for split in SPLITS:
        if f"{split}_images" not in arrays:
            continue
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].reshape(-1)
        validate_split(images, labels, f"{raw} [{split}]", size=size, need_both_classes=False)
        # where each image sits in the raw file: its split, its position there, its file if any
        part = {"source_split": np.full(len(labels), split), "source_index": np.arange(len(labels))}
        if f"{split}_files" in arrays:
            part["source_file"] = arrays[f"{split}_files"].astype(str)
        if f"{split}_patients" in arrays:
            patients = arrays[f"{split}_patients"].astype(str)
        else:  # every image its own patient, named by its content
            patients = np.array([IMAGE_ID + k.hex() for k in _row_keys(images, labels)])
        out[split] = {
            "images": images,
            "labels": labels.astype(np.int64),
            "patients": patients,
            **part,
        }
    return out


def carve(
    parts: dict[str, dict[str, np.ndarray]], min_images: int, fraction: float, seed: int
) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """Carve missing or small splits (test, then val) out of train, grouped by patient."""
    parts = {k: _ordered(v) for k, v in parts.items()}
    carved = []
    for split in ("test", "val"):
        if split in parts and len(parts[split]["labels"]) >= min_images:
            continue
        if split in parts:  # too small: its images go back to train first
            small = parts.pop(split)
            parts["train"] = _ordered(
                {k: np.concatenate([parts["train"][k], small[k]]) for k in small}
            )
        train = parts["train"]
        mask = _fold(train["labels"], train["patients"], fraction, seed)
        parts[split] = {k: v[mask] for k, v in train.items()}
        parts["train"] = {k: v[~mask] for k, v in train.items()}
        carved.append(split)
    return parts, carved


def shared_patients(parts: dict[str, dict[str, np.ndarray]]) -> dict[str, int]:
    """How many patients each pair of splits shares ('train/test': 3).

    For a source without patient ids these are images found, pixel for pixel, in both splits.
    """
    out = {}
    names = [s for s in SPLITS if s in parts]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            out[f"{a}/{b}"] = len(set(parts[a]["patients"]) & set(parts[b]["patients"]))
    return out


@dataclass(frozen=True)
class SplitInfo:
    carved: list[str]  # the splits carved out of train
    shared: dict[str, int]  # "train/val" -> patients (or identical images) in both
    by_image: bool  # the source has no patient ids: `shared` counts identical images
    sources: dict[str, dict[str, np.ndarray]]  # per split, where each image sits in the raw file


def split_raw(
    raw: Path,
    size: int | None,
    train_per_class: int | None,
    rng: np.random.Generator,
    keep_ratio: bool = False,
    **carving,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train/val/test of a raw file (see `split_parts`), images and labels only."""
    return split_parts(raw, size, train_per_class, rng, keep_ratio, **carving)[0]


def split_parts(
    raw: Path,
    size: int | None,
    train_per_class: int | None,
    rng: np.random.Generator,
    keep_ratio: bool = False,
    *,
    min_images: int = 0,
    carve_fraction: float = 0.1,
    carve_seed: int = 0,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], SplitInfo]:
    """Train/val/test of a raw file, canonically ordered, missing ones carved, train capped."""
    parts, carved = carve(read_raw(raw, size), min_images, carve_fraction, carve_seed)
    by_image = all(str(p).startswith(IMAGE_ID) for v in parts.values() for p in v["patients"][:1])
    out, sources = {}, {}
    for split in SPLITS:
        part = parts[split]
        images, labels = part["images"], part["labels"]
        validate_split(images, labels, f"{raw} [{split}]", size=size)
        keep = np.arange(len(labels))
        if split == "train":
            keep = cap_per_class(labels, train_per_class, rng, keep_ratio)
        out[split] = (images[keep], labels[keep])
        sources[split] = {k: v[keep] for k, v in part.items() if k.startswith("source_")}
    return out, SplitInfo(carved, shared_patients(parts), by_image, sources)
