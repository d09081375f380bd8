"""What the data looks like before anything trains on it: counts, intensities, samples, sizes.

Everything is computed from `data/split` (the images every later stage reads) and, for the
original image sizes of a folder source, from the raw file download wrote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pneumogan.core.grids import grid
from pneumogan.data.contract import SPLITS
from pneumogan.report.figures import new_figure, save_figure


def summary(splits: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str]) -> dict:
    """Per split: images per class, the minority/majority ratio, mean and std of the pixels."""
    out = {}
    for split, (images, labels) in splits.items():
        counts = np.bincount(labels, minlength=2)
        row: dict = {"total": int(labels.size)}
        for k, name in enumerate(classes):
            pix = images[labels == k].astype(np.float64) / 255.0
            row[name] = {
                "images": int(counts[k]),
                "share": round(float(counts[k] / max(labels.size, 1)), 4),
                "pixel_mean": round(float(pix.mean()), 4) if pix.size else None,
                "pixel_std": round(float(pix.std()), 4) if pix.size else None,
            }
        row["minority_to_majority"] = round(float(counts.min() / max(counts.max(), 1)), 4)
        out[split] = row
    return out


def counts_table(splits: dict, classes: list[str]) -> pd.DataFrame:
    """One row per split and class: the bar chart `dvc plots` draws."""
    rows = [
        {"group": f"{split} {name}", "images": int(np.sum(labels == k))}
        for split, (_, labels) in splits.items()
        for k, name in enumerate(classes)
    ]
    return pd.DataFrame(rows)


def intensity_table(splits: dict, bins: int) -> pd.DataFrame:
    """Share of pixels per intensity bin, one column per split and label (`train_class0`).

    Columns are named by label, not class name, so dvc.yaml's plot names them for any source.
    """
    edges = np.linspace(0, 256, bins + 1)
    table = {"intensity": (edges[:-1] + edges[1:]) / 2}
    for split, (images, labels) in splits.items():
        for k in (0, 1):
            hist, _ = np.histogram(images[labels == k], bins=edges)
            table[column(split, k)] = hist / max(hist.sum(), 1)
    return pd.DataFrame(table)


def column(split: str, label: int) -> str:
    return f"{split}_class{label}"


def samples_figure(
    path: Path, splits: dict, classes: list[str], per_class: int, rng: np.random.Generator
) -> None:
    """A grid of training images per class, drawn at random with `rng`, at their stored size."""
    images, labels = splits["train"]
    fig = new_figure(figsize=(5 * len(classes), 5.4))
    for ax, (k, name) in zip(fig.subplots(1, len(classes)), enumerate(classes), strict=True):
        idx = np.flatnonzero(labels == k)
        pick = np.sort(rng.choice(idx, size=min(per_class, idx.size), replace=False))
        ax.imshow(
            grid(images[pick], nrow=int(np.ceil(np.sqrt(pick.size)))), cmap="gray", vmin=0, vmax=255
        )
        ax.set_title(f"train: {name} ({pick.size} of {idx.size})")
        ax.set_axis_off()
    save_figure(fig, path)


def intensity_figure(path: Path, table: pd.DataFrame, classes: list[str]) -> None:
    """Pixel-intensity histograms per split, one line per class."""
    fig = new_figure(figsize=(5 * len(SPLITS), 3.6))
    for ax, split in zip(fig.subplots(1, len(SPLITS), sharey=True), SPLITS, strict=True):
        for k, name in enumerate(classes):
            ax.plot(table["intensity"], table[column(split, k)], label=name)
        ax.set_title(f"{split}: pixel intensities")
        ax.set_xlabel("intensity (0 black, 255 white)")
        ax.legend()
    fig.axes[0].set_ylabel("share of pixels")
    save_figure(fig, path)


def sizes_figure(path: Path, raw: dict[str, np.ndarray], classes: list[str], size: int) -> None:
    """Original width against height of every image of a folder source, per class."""
    fig = new_figure(figsize=(5.2, 4.6))
    ax = fig.subplots()
    shapes = [
        (raw[f"{s}_shapes"], raw[f"{s}_labels"].reshape(-1)) for s in SPLITS if f"{s}_shapes" in raw
    ]
    if not shapes:
        ax.text(
            0.5,
            0.5,
            f"The source stores every image at {size}x{size} px;\nno original sizes to show.",
            ha="center",
            va="center",
        )
        ax.set_axis_off()
    else:
        hw = np.concatenate([s for s, _ in shapes])
        labels = np.concatenate([y for _, y in shapes])
        for k, name in enumerate(classes):
            sel = labels == k
            ax.scatter(hw[sel, 1], hw[sel, 0], s=6, alpha=0.4, label=f"{name} ({sel.sum()})")
        ax.set_xlabel("original width (px)")
        ax.set_ylabel("original height (px)")
        ax.set_title(f"Original image sizes (resized to {size} px)")
        ax.legend()
    save_figure(fig, path)
