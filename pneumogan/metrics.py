"""Test-set metrics and the curves behind the ROC, PR and confusion plots."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """AUC plus threshold metrics; positive class is pneumonia (1)."""
    pred = (p >= threshold).astype(np.int64)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    out = {
        "auc": skm.roc_auc_score(y, p),
        "average_precision": skm.average_precision_score(y, p),
        "accuracy": skm.accuracy_score(y, pred),
        "sensitivity": tp / max(tp + fn, 1),
        "specificity": tn / max(tn + fp, 1),
        "precision": skm.precision_score(y, pred, zero_division=0),
        "f1": skm.f1_score(y, pred, zero_division=0),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "brier": skm.brier_score_loss(y, p),
    }
    out = {k: round(float(v), 6) for k, v in out.items()}
    out.update(tp=int(tp), fp=int(fp), tn=int(tn), fn=int(fn), n=int(y.shape[0]))
    return out


def roc_table(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=True)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thr, 1.0)}).round(6)


def pr_table(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    precision, recall, thr = skm.precision_recall_curve(y, p, drop_intermediate=True)
    return pd.DataFrame(
        {"recall": recall, "precision": precision, "threshold": np.append(thr, 1.0)}
    ).round(6)


def predictions_table(y: np.ndarray, p: np.ndarray, threshold: float) -> pd.DataFrame:
    """One row per test image, for DVC's confusion-matrix template."""
    return pd.DataFrame(
        {"actual": y, "predicted": (p >= threshold).astype(np.int64), "probability": np.round(p, 6)}
    )


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold that maximises sensitivity + specificity − 1 (Youden's J) on (y, p)."""
    fpr, tpr, thr = skm.roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(thr[best], 1.0))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """ECE with equal-width bins (torchmetrics' binary calibration error, L1 norm)."""
    from torchmetrics.functional.classification import binary_calibration_error

    return float(
        binary_calibration_error(
            torch.from_numpy(p).float(), torch.from_numpy(y), n_bins=bins, norm="l1"
        )
    )


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int) -> pd.DataFrame:
    """Per equal-width bin of P(pneumonia): mean prediction, observed frequency, count."""
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    rows = [
        {
            "bin": b,
            "mean_predicted": p[idx == b].mean(),
            "observed": y[idx == b].mean(),
            "count": int((idx == b).sum()),
        }
        for b in range(bins)
        if (idx == b).any()
    ]
    return pd.DataFrame(rows).round(6)


def _statistics(threshold: float) -> dict:
    """The bootstrapped metrics as functions of (labels, probabilities)."""
    return {
        "auc": lambda y, p: skm.roc_auc_score(y, p) if 0 < y.sum() < len(y) else np.nan,
        "accuracy": lambda y, p: np.mean((p >= threshold) == y),
        "sensitivity": lambda y, p: np.mean(p[y == 1] >= threshold) if y.any() else np.nan,
        "specificity": lambda y, p: np.mean(p[y == 0] < threshold) if not y.all() else np.nan,
    }


def bootstrap_ci(
    y: np.ndarray, p: np.ndarray, threshold: float, *, resamples: int, level: float, seed: int
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals (scipy) over test images, resampled in pairs."""
    from scipy.stats import DegenerateDataWarning, bootstrap

    out = {}
    for i, (name, stat) in enumerate(_statistics(threshold).items()):
        with warnings.catch_warnings():  # NaN resamples are handled below
            warnings.simplefilter("ignore", DegenerateDataWarning)
            res = bootstrap(
                (y, p),
                stat,
                paired=True,
                vectorized=False,
                n_resamples=resamples,
                confidence_level=level,
                method="percentile",
                rng=np.random.default_rng(seed + i),
            )
        # Percentiles of scipy's bootstrap distribution, skipping resamples that lack a class
        # (possible only on tiny test sets), where a metric is undefined.
        tail = 50 * (1 - level)
        low, high = np.nanpercentile(res.bootstrap_distribution, [tail, 100 - tail])
        out[name] = {"low": round(float(low), 6), "high": round(float(high), 6)}
    return out
