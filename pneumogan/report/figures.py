"""Figures people look at, drawn with matplotlib's object API (no pyplot state, no backend switch).

Only evaluation and reports import this module, so restyling a figure reruns no training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn import metrics as skm
from sklearn.calibration import CalibrationDisplay

from pneumogan.core.choices import LABELS
from pneumogan.core.files import atomic_path


def new_figure(**kwargs) -> Figure:
    """A figure detached from pyplot, rendered by the Agg canvas when saved."""
    return Figure(layout="constrained", **kwargs)


def save_figure(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def evaluation_figure(path: Path, y: np.ndarray, p: np.ndarray, threshold: float) -> None:
    """ROC, precision-recall and confusion matrix of the test predictions, side by side."""
    fig = new_figure(figsize=(16, 4.6))
    roc, pr, cm = fig.subplots(1, 3)
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
    save_figure(fig, path)


def reliability_figure(path: Path, table: pd.DataFrame, ece: float) -> None:
    """Reliability diagram (scikit-learn's CalibrationDisplay) of the binned table that
    `metrics.reliability_table` computed: observed pneumonia frequency against mean
    prediction per non-empty bin, each point labelled with its count."""
    fig = new_figure(figsize=(4.8, 4.6))
    ax = fig.subplots()
    # Built from the stage's own bins (from_predictions would re-bin, putting a P on a bin
    # edge into the lower bin); y_prob is only stored by the display, never drawn.
    display = CalibrationDisplay(
        prob_true=table["observed"].to_numpy(),
        prob_pred=table["mean_predicted"].to_numpy(),
        y_prob=None,
    )
    display.plot(ax=ax, name=f"classifier (ECE {ece:.3f})", marker="o")
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
    save_figure(fig, path)


def explanation_grid(
    path: Path,
    groups: dict[str, np.ndarray],
    overlays: dict[int, np.ndarray],
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
) -> None:
    """One row per group of test images (true class, right or wrong), each under its map."""
    cols = max([len(idx) for idx in groups.values()] + [1])
    fig = new_figure(figsize=(cols * 1.6, len(groups) * 1.85))
    axes = fig.subplots(len(groups), cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, (name, idx) in zip(axes, groups.items(), strict=True):
        row[0].text(-0.15, 0.5, name, transform=row[0].transAxes, ha="right", va="center")
        if len(idx) == 0:
            row[0].text(0.5, 0.5, "none", transform=row[0].transAxes, ha="center", fontsize=8)
        for ax, i in zip(row, idx, strict=False):
            ax.imshow(overlays[int(i)])
            ax.set_title(f"P={p[i]:.2f}", fontsize=7)
    fig.suptitle(
        f"Grad-CAM of P(pneumonia) on test images, most confident first "
        f"(called pneumonia at P >= {threshold:g})",
        fontsize=9,
    )
    save_figure(fig, path)


def error_grid(
    path: Path, images: np.ndarray, y: np.ndarray, p: np.ndarray, threshold: float, limit: int
) -> None:
    """The misclassified test images, most confident mistakes first, with label and P."""
    wrong = np.flatnonzero((p >= threshold).astype(int) != y)
    wrong = wrong[np.argsort(-np.abs(p[wrong] - threshold), kind="stable")][:limit]
    cols = 8
    rows = max(1, -(-len(wrong) // cols))
    fig = new_figure(figsize=(cols * 1.3, rows * 1.55))
    axes = fig.subplots(rows, cols, squeeze=False)
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
    save_figure(fig, path)
