"""Test-set metrics and the curves behind the ROC, PR and confusion plots."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from scipy.stats import DegenerateDataWarning, bootstrap
from sklearn import metrics as skm
from torchmetrics.functional.classification import binary_calibration_error

from pneumogan.core.choices import LABELS


def ranking_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Threshold-free metrics: AUC, average precision and the Brier score."""
    out = {
        "auc": skm.roc_auc_score(y, p),
        "average_precision": skm.average_precision_score(y, p),
        "brier": skm.brier_score_loss(y, p),
    }
    return {k: round(float(v), 6) for k, v in out.items()}


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Metrics of the calls at `threshold`; positive class is pneumonia (1)."""
    pred = (p >= threshold).astype(np.int64)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    out = {
        "threshold": threshold,
        "accuracy": skm.accuracy_score(y, pred),
        "sensitivity": tp / max(tp + fn, 1),
        "specificity": tn / max(tn + fp, 1),
        "precision": skm.precision_score(y, pred, zero_division=0),
        "f1": skm.f1_score(y, pred, zero_division=0),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
    }
    out = {k: round(float(v), 6) for k, v in out.items()}
    out.update(tp=int(tp), fp=int(fp), tn=int(tn), fn=int(fn))
    return out


def roc_table(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=True)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thr, 1.0)}).round(6)


def pr_table(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    precision, recall, thr = skm.precision_recall_curve(y, p, drop_intermediate=True)
    return pd.DataFrame(
        {"recall": recall, "precision": precision, "threshold": np.append(thr, 1.0)}
    ).round(6)


def predictions_table(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    sources: dict[str, np.ndarray] | None = None,
    *,
    ood_score: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per test image, class names as labels, for DVC's confusion-matrix template.

    With `sources` (see `pneumogan.data.contract.save_split`) each row says where its image
    sits in the raw file (`split`, `index`, and `file` for a folder source), and the rows are
    in the raw file's order; `pneumogan review` pairs two evaluations' rows by them. With
    `ood_score` (a model with an input gate) the last column is each image's gate score.
    """
    names = np.array([LABELS[0], LABELS[1]])
    table = pd.DataFrame(
        {
            "actual": names[y],
            "predicted": names[(p >= threshold).astype(np.int64)],
            "probability": np.round(p, 6),
        }
    )
    if ood_score is not None:
        table["ood_score"] = np.round(ood_score, 6)
    if not sources:
        return table
    where = {"split": sources["source_split"], "index": sources["source_index"]}
    if "source_file" in sources:
        where["file"] = sources["source_file"]
    table = pd.concat([pd.DataFrame(where), table], axis=1)
    rank = table["split"].map({"train": 0, "val": 1, "test": 2})
    return table.assign(_rank=rank).sort_values(["_rank", "index"]).drop(columns="_rank")


HEADLINE = ("auc", "accuracy", "sensitivity", "specificity", "balanced_accuracy", "brier")


def headline(scores: dict) -> dict[str, float]:
    """The figures a reviewer reads first (metrics/headline.json): AUC, and the calls'
    accuracy, sensitivity, specificity and balanced accuracy at the operating threshold
    (evaluate.threshold), and the Brier score, all on the test split."""
    return {k: scores[k] for k in HEADLINE}


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold that maximises sensitivity + specificity − 1 (Youden's J) on (y, p)."""
    fpr, tpr, thr = skm.roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(thr[best], 1.0))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """ECE with equal-width bins (torchmetrics' binary calibration error, L1 norm)."""
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
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    *,
    resamples: int,
    level: float,
    rng: np.random.Generator,
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals (scipy) over test images, resampled in pairs."""
    out = {}
    for name, stat in _statistics(threshold).items():
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
                rng=rng,
            )
        # Percentiles of scipy's bootstrap distribution, skipping resamples that lack a class
        # (possible only on tiny test sets), where a metric is undefined.
        tail = 50 * (1 - level)
        low, high = np.nanpercentile(res.bootstrap_distribution, [tail, 100 - tail])
        out[name] = {"low": round(float(low), 6), "high": round(float(high), 6)}
    return out


def score_test(
    y: np.ndarray,
    p: np.ndarray,
    *,
    val_threshold: float,
    threshold: float,
    calibration_bins: int,
    resamples: int,
    level: float,
    rng: np.random.Generator,
) -> dict:
    """Everything metrics/eval.json holds: every figure is on the test split.

    The top-level threshold metrics use the fixed `evaluate.threshold` (saved as
    `threshold`); `at_val_threshold` holds them at the threshold chosen on the validation
    split (passed in: the test split never chooses anything).
    """
    return {
        "n": int(y.shape[0]),
        **ranking_metrics(y, p),
        "ece": round(expected_calibration_error(y, p, calibration_bins), 6),
        **threshold_metrics(y, p, threshold),
        "at_val_threshold": threshold_metrics(y, p, round(val_threshold, 6)),
        "ci": bootstrap_ci(y, p, threshold, resamples=resamples, level=level, rng=rng),
    }


def summary_line(scores: dict, level: float) -> str:
    """One short line for the log: AUC with its interval and accuracy at both thresholds."""
    ci, fixed, chosen = scores["ci"]["auc"], scores, scores["at_val_threshold"]
    return (
        f"test AUC {scores['auc']:.3f} ({level:.0%} CI {ci['low']:.3f}-{ci['high']:.3f}), "
        f"accuracy {fixed['accuracy']:.3f} at {fixed['threshold']:g}, "
        f"{chosen['accuracy']:.3f} at the validation-chosen {chosen['threshold']:.3f} "
        f"({scores['n']} images)"
    )
