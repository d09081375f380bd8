"""Files people look at: sample grids, plot tables for DVC, and figures for MLflow."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm
from torchvision.utils import make_grid

from pneumogan.io import LABELS, atomic_path


def save_grid(path: Path, images: torch.Tensor, nrow: int = 8) -> None:
    """Save N×1×H×W images in [-1, 1] as one PNG grid (fixed range, no per-image stretch)."""
    from PIL import Image

    grid = make_grid(images, nrow=nrow, padding=2, pad_value=1.0)
    arr = ((grid[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(arr, mode="L").save(tmp, format="PNG")


def save_table(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


class History:
    """Per-epoch numbers: a log line and MLflow metrics as they come, then a CSV and a figure."""

    def __init__(self, run, logger: logging.Logger) -> None:
        self.run, self.log, self.rows = run, logger, []

    def __call__(self, epoch: int, stats: dict[str, float]) -> None:
        self.rows.append({"epoch": epoch, **stats})
        self.run.log_metrics(stats, step=epoch)
        self.log.info("epoch %3d  %s", epoch, "  ".join(f"{k} {v:.4f}" for k, v in stats.items()))

    def save(self, csv_path: Path, panels: dict[str, list[str]]) -> None:
        """Write the panels' columns (a DVC plot) and their figure beside it; log both."""
        columns = [c for cols in panels.values() for c in cols]
        table = pd.DataFrame(self.rows)[["epoch", *columns]].dropna()
        save_table(csv_path, table)
        curves_figure(csv_path.with_suffix(".png"), table, panels)
        self.run.log_artifact(csv_path)
        self.run.log_artifact(csv_path.with_suffix(".png"))


def _save_fig(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def curves_figure(path: Path, table: pd.DataFrame, panels: dict[str, list[str]]) -> None:
    """One panel per entry of `panels` (title → columns), x = epoch."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False, layout="constrained"
    )
    for ax, (title, cols) in zip(axes[0], panels.items(), strict=True):
        for col in cols:
            ax.plot(table["epoch"], table[col], label=col)
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    _save_fig(fig, path)


def evaluation_figure(path: Path, y: np.ndarray, p: np.ndarray, threshold: float) -> None:
    """ROC, precision-recall and confusion matrix of the test predictions, side by side."""
    fig, (roc, pr, cm) = plt.subplots(1, 3, figsize=(16, 4.6), layout="constrained")
    skm.RocCurveDisplay.from_predictions(y, p, ax=roc, name="classifier")
    roc.plot([0, 1], [0, 1], "k:", lw=1)
    roc.set_title("ROC (test)")
    skm.PrecisionRecallDisplay.from_predictions(y, p, ax=pr, name="classifier")
    pr.set_title("Precision-recall (test)")
    skm.ConfusionMatrixDisplay.from_predictions(
        y,
        (p >= threshold).astype(int),
        labels=[0, 1],
        display_labels=[LABELS[0], LABELS[1]],
        ax=cm,
        colorbar=False,
        cmap="Blues",
    )
    cm.set_title(f"Confusion at threshold {threshold:g}")
    _save_fig(fig, path)


def reliability_figure(path: Path, table: pd.DataFrame, ece: float) -> None:
    """Reliability diagram: observed pneumonia frequency against mean prediction per bin."""
    fig, ax = plt.subplots(figsize=(4.8, 4.6), layout="constrained")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    ax.plot(table["mean_predicted"], table["observed"], "o-", label="classifier")
    for _, row in table.iterrows():
        ax.annotate(
            str(int(row["count"])),
            (row["mean_predicted"], row["observed"]),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="mean predicted P(pneumonia)",
        ylabel="observed pneumonia frequency",
        title=f"Reliability (test), ECE {ece:.3f}",
    )
    ax.legend(loc="upper left")
    _save_fig(fig, path)


def error_grid(
    path: Path, images: np.ndarray, y: np.ndarray, p: np.ndarray, threshold: float, limit: int
) -> None:
    """The misclassified test images, most confident mistakes first, with label and P."""
    wrong = np.flatnonzero((p >= threshold).astype(int) != y)
    wrong = wrong[np.argsort(-np.abs(p[wrong] - threshold), kind="stable")][:limit]
    cols = 8
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * 1.3, rows * 1.55), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{LABELS[int(y[i])]}\nP={p[i]:.2f}", fontsize=7)
    fig.suptitle(
        f"{len(wrong)} of {int(((p >= threshold).astype(int) != y).sum())} "
        f"misclassified test images (true label, P(pneumonia))",
        fontsize=9,
    )
    _save_fig(fig, path)
