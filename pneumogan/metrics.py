"""Test-set metrics and the curves behind the ROC, PR and confusion plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
