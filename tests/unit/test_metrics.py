"""Test-set metrics, curves, calibration and bootstrap intervals."""

import numpy as np
import pytest

from pneumogan.evaluate.metrics import (
    bootstrap_ci,
    expected_calibration_error,
    pr_table,
    predictions_table,
    ranking_metrics,
    reliability_table,
    roc_table,
    score_test,
    summary_line,
    threshold_metrics,
    youden_threshold,
)

Y = np.array([0, 0, 0, 1, 1, 1, 1])
P = np.array([0.1, 0.6, 0.2, 0.9, 0.8, 0.4, 0.7])


def test_threshold_metrics_known_case():
    m = threshold_metrics(Y, P, 0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 1, 2, 1)
    assert m["threshold"] == 0.5
    assert m["accuracy"] == round(5 / 7, 6)
    assert m["sensitivity"] == 0.75 and m["specificity"] == round(2 / 3, 6)
    assert m["precision"] == 0.75
    assert m["f1"] == 0.75
    assert m["balanced_accuracy"] == round((0.75 + 2 / 3) / 2, 6)


def test_threshold_is_inclusive_and_moves_the_calls():
    assert threshold_metrics(Y, P, 0.6)["fp"] == 1  # p = 0.6 is called pneumonia at 0.6
    strict = threshold_metrics(Y, P, 0.61)
    assert (strict["tp"], strict["fp"], strict["tn"], strict["fn"]) == (3, 0, 3, 1)


def test_threshold_metrics_without_positive_calls():
    m = threshold_metrics(Y, P, 0.95)
    assert (m["tp"], m["fp"]) == (0, 0)
    assert m["sensitivity"] == 0.0 and m["specificity"] == 1.0 and m["precision"] == 0.0


def test_ranking_metrics_known_case():
    m = ranking_metrics(Y, P)
    assert set(m) == {"auc", "average_precision", "brier"}
    assert m["auc"] == round(11 / 12, 6)
    assert m["brier"] == round(float(np.mean((P - Y) ** 2)), 6)
    # precision at each positive, by rank: 1/1, 2/2, 3/3 (0.6 is a negative), 4/5
    assert m["average_precision"] == round((1 + 1 + 1 + 4 / 5) / 4, 6)
    halved = ranking_metrics(Y, P * 0.5)  # a monotone rescale: same ranking, worse calibration
    assert (halved["auc"], halved["average_precision"]) == (m["auc"], m["average_precision"])
    assert halved["brier"] > m["brier"]


def test_tables():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.2, 0.7, 0.6, 0.9])
    roc = roc_table(y, p)
    assert roc[["fpr", "tpr"]].iloc[-1].tolist() == [1.0, 1.0]
    assert roc["threshold"].max() <= 1.0  # sklearn's inf replaced for the plot
    pr = pr_table(y, p)
    assert {"recall", "precision", "threshold"} <= set(pr.columns)
    table = predictions_table(y, p, 0.5)
    assert table["actual"].tolist() == ["normal", "pneumonia", "normal", "pneumonia"]
    assert table["predicted"].tolist() == ["normal", "pneumonia", "pneumonia", "pneumonia"]
    assert table["probability"].tolist() == [0.2, 0.7, 0.6, 0.9]


def test_youden_threshold_separates_when_possible():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.3, 0.35, 0.4, 0.8, 0.9])
    t = youden_threshold(y, p)
    assert 0.35 < t <= 0.4
    m = threshold_metrics(y, p, t)
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


def noisy_scores(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(int)
    p = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    return y, p


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_data():
    y, p = noisy_scores()
    point = {**ranking_metrics(y, p), **threshold_metrics(y, p, 0.5)}

    def ci(y, p, seed=0):
        return bootstrap_ci(y, p, 0.5, resamples=100, level=0.95, rng=np.random.default_rng(seed))

    full = ci(y, p)
    for name in ("auc", "accuracy", "sensitivity", "specificity"):
        assert full[name]["low"] <= point[name] <= full[name]["high"]
    small = ci(y[:60], p[:60])
    assert small["auc"]["high"] - small["auc"]["low"] > full["auc"]["high"] - full["auc"]["low"]
    assert ci(y[:60], p[:60]) == small  # the rng decides the resamples
    assert ci(y[:60], p[:60], seed=1) != small


def test_bootstrap_on_a_tiny_test_set_skips_resamples_without_a_class():
    y, p = np.array([0, 1, 0, 1, 1]), np.array([0.2, 0.8, 0.4, 0.6, 0.3])
    ci = bootstrap_ci(y, p, 0.5, resamples=200, level=0.9, rng=np.random.default_rng(0))
    for bounds in ci.values():
        assert np.isfinite([bounds["low"], bounds["high"]]).all()
        assert 0.0 <= bounds["low"] <= bounds["high"] <= 1.0


def scores(val_threshold=0.4321234):
    y, p = noisy_scores(200)
    return score_test(
        y,
        p,
        val_threshold=val_threshold,
        threshold=0.5,
        calibration_bins=10,
        resamples=100,
        level=0.95,
        rng=np.random.default_rng(0),
    )


def test_score_test_holds_every_figure_of_eval_json():
    s = scores()
    assert set(s) == {
        "n",
        "auc",
        "average_precision",
        "brier",
        "ece",
        *threshold_metrics(np.array([0, 1]), np.array([0.2, 0.8]), 0.5),
        "at_val_threshold",
        "ci",
    }
    assert s["n"] == 200
    assert set(s["ci"]) == {"auc", "accuracy", "sensitivity", "specificity"}
    y, p = noisy_scores(200)
    fixed = threshold_metrics(y, p, 0.5)
    assert {k: s[k] for k in fixed} == fixed
    assert s["auc"] == ranking_metrics(y, p)["auc"]
    assert s == scores()  # deterministic


def test_at_val_threshold_uses_the_passed_threshold():
    s = scores(0.4321234)
    assert s["at_val_threshold"]["threshold"] == 0.432123  # rounded, as written to JSON
    assert s["threshold"] == 0.5
    assert s["at_val_threshold"]["accuracy"] != s["accuracy"]
    y, p = noisy_scores(200)
    assert s["at_val_threshold"] == threshold_metrics(y, p, 0.432123)
    assert scores(0.9)["at_val_threshold"]["tp"] < s["at_val_threshold"]["tp"]


def test_summary_line_is_one_short_line():
    s = scores()
    line = summary_line(s, 0.95)
    assert "\n" not in line and len(line) < 200
    assert f"{s['auc']:.3f}" in line and "95% CI" in line and "(200 images)" in line
    assert "0.432" in line  # the validation-chosen threshold
