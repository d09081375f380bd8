import numpy as np

from pneumogan.metrics import binary_metrics, pr_table, predictions_table, roc_table


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
