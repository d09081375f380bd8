import numpy as np
import pytest

from pneumogan.metrics import (
    binary_metrics,
    bootstrap_ci,
    expected_calibration_error,
    pr_table,
    predictions_table,
    reliability_table,
    roc_table,
    youden_threshold,
)


def test_binary_metrics_known_case():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.2, 0.9, 0.8, 0.4, 0.7])
    m = binary_metrics(y, p, 0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 1, 2, 1)
    assert m["accuracy"] == round(5 / 7, 6)
    assert m["sensitivity"] == 0.75 and m["specificity"] == round(2 / 3, 6)
    assert m["precision"] == 0.75
    assert m["balanced_accuracy"] == round((0.75 + 2 / 3) / 2, 6)
    assert m["auc"] == round(11 / 12, 6)
    assert m["brier"] == round(float(np.mean((p - y) ** 2)), 6)


def test_tables():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.2, 0.7, 0.6, 0.9])
    roc = roc_table(y, p)
    assert roc[["fpr", "tpr"]].iloc[-1].tolist() == [1.0, 1.0]
    assert {"recall", "precision"} <= set(pr_table(y, p).columns)
    assert predictions_table(y, p, 0.5)["predicted"].tolist() == [0, 1, 1, 1]


def test_youden_threshold_separates_when_possible():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.3, 0.35, 0.4, 0.8, 0.9])
    t = youden_threshold(y, p)
    assert 0.35 < t <= 0.4
    m = binary_metrics(y, p, t)
    assert m["sensitivity"] == 1.0 and m["specificity"] == 1.0


def test_calibration():
    y = np.array([0, 0, 1, 1, 0, 1, 1, 1])
    p = np.array([0.05, 0.15, 0.95, 0.85, 0.95, 0.95, 0.95, 0.95])
    table = reliability_table(y, p, bins=10)
    assert table["count"].sum() == len(y)
    top = table[table["bin"] == 9].iloc[0]
    assert top["count"] == 5 and top["observed"] == 0.8 and top["mean_predicted"] == 0.95
    # ECE by hand: bins 0 (0.05 vs 0), 1 (0.15 vs 0), 8 (0.85 vs 1), 9 (0.95 vs 0.8)
    expected = (0.05 + 0.15 + 0.15 + 5 * 0.15) / 8
    assert expected_calibration_error(y, p, 10) == pytest.approx(expected, abs=1e-6)


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_data():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.6).astype(int)
    p = np.clip(0.35 * y + rng.random(400) * 0.65, 0, 1)
    point = binary_metrics(y, p, 0.5)
    ci = bootstrap_ci(y, p, 0.5, resamples=200, level=0.95, seed=0)
    for name in ("auc", "accuracy", "sensitivity", "specificity"):
        assert ci[name]["low"] <= point[name] <= ci[name]["high"]
    small = bootstrap_ci(y[:60], p[:60], 0.5, resamples=200, level=0.95, seed=0)
    assert small["auc"]["high"] - small["auc"]["low"] > ci["auc"]["high"] - ci["auc"]["low"]
    assert bootstrap_ci(y, p, 0.5, resamples=200, level=0.95, seed=0) == ci  # seeded
