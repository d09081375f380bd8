"""Statistics of a study: mean ± sd per cell, and paired differences between methods."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pneumogan.choices import METHODS
from pneumogan.study.spec import ALL

METRICS = {  # column of runs.csv: (label, higher is better)
    "auc": ("AUC", True),
    "accuracy": ("accuracy", True),
    "balanced_accuracy": ("balanced accuracy", True),
    "sensitivity": ("sensitivity", True),
    "specificity": ("specificity", True),
    "f1": ("F1", True),
    "brier": ("Brier score", False),
    "ece": ("ECE", False),
}
PAIRS = (
    ("gan", "none"),
    ("gan", "oversample"),
    ("oversample", "none"),
    ("weighted", "none"),
    ("weighted", "oversample"),
)


def cap_order(caps) -> list:
    """Caps ascending, then `all`."""
    return sorted({c for c in caps if c != ALL}) + ([ALL] if ALL in set(caps) else [])


def sort_key(col: pd.Series) -> pd.Series:
    if col.name == "cap":
        return col.map(lambda c: float("inf") if c == ALL else float(c))
    if col.name == "method":
        return col.map(METHODS.index)
    return col


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count of every metric per (cap, method)."""
    return runs.groupby(["cap", "method"], sort=False)[list(METRICS)].agg(["mean", "std", "count"])


def paired_summary(d: np.ndarray, higher: bool, level: float = 0.95) -> dict[str, float]:
    """Mean of per-seed differences `d`, a t interval over seeds (NaN with fewer than two, or
    with no spread), and in how many seeds the first did better."""
    n, mean = d.size, float(d.mean())
    if n > 1 and d.std(ddof=1) > 0:
        low, high = stats.t.interval(level, n - 1, loc=mean, scale=d.std(ddof=1) / np.sqrt(n))
    else:
        low = high = float("nan")
    better = int(np.sum(d > 0) if higher else np.sum(d < 0))
    return {"n": n, "mean": mean, "low": float(low), "high": float(high), "a_better": better}


def paired_differences(runs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """a − b per seed, for each pair of methods and cap; mean with a t interval over seeds."""
    rows = []
    for cap, at_cap in runs.groupby("cap", sort=False):
        wide = at_cap.pivot(index="seed", columns="method", values=list(METRICS))
        for a, b in PAIRS:
            if a not in wide["auc"] or b not in wide["auc"]:
                continue
            for metric, (_, higher) in METRICS.items():
                d = (wide[metric][a] - wide[metric][b]).dropna().to_numpy()
                if d.size == 0:
                    continue
                rows.append(
                    {
                        "cap": cap,
                        "a": a,
                        "b": b,
                        "metric": metric,
                        **paired_summary(d, higher, level),
                    }
                )
    return pd.DataFrame(rows)
