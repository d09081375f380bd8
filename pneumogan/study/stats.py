"""Statistics of a study: mean ± sd per cell, and paired differences between methods."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pneumogan.study.spec import ALL, PLAIN

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


def method_order(methods) -> list[str]:
    """Methods as reports list them: none, oversample, weighted, `gan`, then the other
    generator arms by name."""
    rank = {m: i for i, m in enumerate((*PLAIN, "gan"))}
    return sorted(set(methods), key=lambda m: (rank.get(m, len(rank)), m))


def pairs(methods) -> list[tuple[str, str]]:
    """The pairs a − b compared where both ran: each generator arm against `oversample`,
    `none` and (another arm) `gan`; the plain methods against each other."""
    present = method_order(methods)
    out = [(g, b) for g in present if g not in PLAIN for b in ("oversample", "none", "gan")]
    out += [("oversample", "none"), ("weighted", "none"), ("weighted", "oversample")]
    return [(a, b) for a, b in out if a != b and a in present and b in present]


def cap_order(caps) -> list:
    """Caps ascending, then `all`."""
    return sorted({c for c in caps if c != ALL}) + ([ALL] if ALL in set(caps) else [])


def sort_key(col: pd.Series) -> pd.Series:
    if col.name == "cap":
        return col.map(lambda c: float("inf") if c == ALL else float(c))
    if col.name == "method":
        return col.map(method_order(col).index)
    return col


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count of every metric per (cap, method)."""
    return runs.groupby(["cap", "method"], sort=False)[list(METRICS)].agg(["mean", "std", "count"])


def paired_summary(d: np.ndarray, higher: bool, level: float = 0.95) -> dict[str, float]:
    """Mean of per-seed differences `d`, a t interval over seeds (NaN with fewer than two, or
    with no spread), and in how many seeds the first did better.

    The interval is scipy's, of the paired t-test: a one-sample t-test of the differences
    (what `scipy.stats.ttest_rel(a, b)` runs on `a - b`)."""
    n, mean = d.size, float(d.mean())
    if n > 1 and d.std(ddof=1) > 0:
        low, high = stats.ttest_1samp(d, popmean=0.0).confidence_interval(level)
    else:
        low = high = float("nan")
    better = int(np.sum(d > 0) if higher else np.sum(d < 0))
    return {"n": n, "mean": mean, "low": float(low), "high": float(high), "a_better": better}


def paired_differences(runs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """a − b per seed, for each pair of methods and cap; mean with a t interval over seeds."""
    rows = []
    for cap, at_cap in runs.groupby("cap", sort=False):
        wide = at_cap.pivot(index="seed", columns="method", values=list(METRICS))
        for a, b in pairs(at_cap["method"]):
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
