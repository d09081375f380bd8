"""`pneumogan review`: paired bootstrap intervals and verdicts on known prediction sets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from pneumogan.core.errors import DataError
from pneumogan.evaluate import review as rv
from pneumogan.serve import cli


def test_vectorised_scores_equal_scikit_learn_row_by_row() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(5, 40))
    p = np.round(rng.random((5, 40)), 1)  # rounded: ties, which the AUC counts half
    got = rv.scores(y, p, 0.5)
    for i in range(5):
        call = (p[i] >= 0.5).astype(int)
        assert got["auc"][i] == pytest.approx(skm.roc_auc_score(y[i], p[i]))
        assert got["accuracy"][i] == pytest.approx(skm.accuracy_score(y[i], call))
        assert got["sensitivity"][i] == pytest.approx(skm.recall_score(y[i], call))
        assert got["specificity"][i] == pytest.approx(skm.recall_score(1 - y[i], 1 - call))
        assert got["balanced_accuracy"][i] == pytest.approx(skm.balanced_accuracy_score(y[i], call))
        assert got["brier"][i] == pytest.approx(skm.brier_score_loss(y[i], p[i]))


def test_a_resample_with_one_class_has_no_auc() -> None:
    assert np.isnan(rv.scores(np.ones((1, 4), int), np.full((1, 4), 0.7), 0.5)["auc"][0])


def _pair(n: int = 300, seed: int = 1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    noisy = np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)  # a weak model
    sharp = np.clip(y * 0.8 + rng.random(n) * 0.2, 0, 1)  # a strong one
    return y, noisy, sharp


def run(y, pa, pb, ta=0.5, tb=0.5, resamples=400):
    rows = rv.paired_bootstrap(
        y, pa, pb, ta, tb, resamples=resamples, level=0.95, rng=np.random.default_rng(0)
    )
    return {r.metric: r for r in rows}


def test_the_same_predictions_differ_by_nothing_within_noise() -> None:
    y, noisy, _ = _pair()
    for r in run(y, noisy, noisy).values():
        assert r.change == 0 and r.low == 0 and r.high == 0
        assert r.verdict == "within noise"


def test_a_clearly_better_model_is_better_and_a_worse_one_worse() -> None:
    y, noisy, sharp = _pair()
    up = run(y, noisy, sharp)
    for k in ("auc", "accuracy", "balanced_accuracy"):
        assert up[k].low > 0 and up[k].verdict == "better"
    assert up["brier"].high < 0 and up["brier"].verdict == "better"  # lower Brier is better
    down = run(y, sharp, noisy)
    assert down["auc"].verdict == "worse" and down["brier"].verdict == "worse"
    assert down["auc"].change == pytest.approx(-up["auc"].change)


def test_the_interval_is_the_percentiles_of_the_paired_differences() -> None:
    y, noisy, sharp = _pair(n=60)
    got = run(y, noisy, sharp, resamples=300)["auc"]
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(300):  # the same draws, one resample at a time, with scikit-learn
        i = rng.integers(0, 60, 60)
        if 0 < y[i].sum() < 60:
            diffs.append(skm.roc_auc_score(y[i], sharp[i]) - skm.roc_auc_score(y[i], noisy[i]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))


def test_a_small_change_is_within_noise() -> None:
    y, noisy, _ = _pair()
    nudged = np.clip(noisy + np.random.default_rng(5).normal(0, 0.01, noisy.shape), 0, 1)
    assert run(y, noisy, nudged)["auc"].verdict == "within noise"


def test_each_side_calls_at_its_own_threshold() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.45, 0.9])
    r = run(y, p, p, ta=0.5, tb=0.42, resamples=50)
    assert r["accuracy"].a == 0.75 and r["accuracy"].b == 1.0
    assert r["auc"].change == 0


# --- the command, in a scratch git repo -----------------------------------------------------


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _write(root: Path, p: np.ndarray, y: np.ndarray, threshold: float = 0.5, keys=True) -> None:
    (root / "metrics/eval").mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(
        {
            "actual": np.where(y == 1, "pneumonia", "normal"),
            "predicted": np.where(p >= threshold, "pneumonia", "normal"),
            "probability": p,
        }
    )
    if keys:
        table.insert(0, "index", np.arange(len(y)))
        table.insert(0, "split", "test")
        table = table.iloc[::-1]  # the pairing goes by index, not by row
    table.to_csv(root / rv.PREDICTIONS, index=False)
    (root / rv.EVAL).write_text(json.dumps({"threshold": threshold}))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "a@b.c")
    _git(tmp_path, "config", "user.name", "a")
    y, noisy, _ = _pair()
    _write(tmp_path, noisy, y)
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "baseline")
    return tmp_path


def test_review_prints_a_table_under_a_hundred_columns_and_markdown(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    y, _, sharp = _pair()
    _write(repo, sharp, y)
    monkeypatch.chdir(repo)
    assert cli.run(["review", "--resamples", "300"]) == 0
    text = capsys.readouterr().out
    assert "workspace against HEAD" in text and "300 test images" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    auc = next(line for line in text.splitlines() if line.startswith("AUC"))
    assert auc.endswith("better")
    assert cli.run(["review", "HEAD", "--md", "--resamples", "300"]) == 0
    md = capsys.readouterr().out
    short = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    assert f"| metric | {short} | workspace |" in md and f"against HEAD ({short})" in md
    assert sum(line.startswith("| ") for line in md.splitlines()) == 2 + len(rv.METRICS)


def test_an_unchanged_workspace_is_within_noise_everywhere(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(repo)
    assert cli.run(["review", "--resamples", "100"]) == 0
    rows = capsys.readouterr().out.splitlines()[3:9]
    assert all(row.endswith("within noise") for row in rows)


def test_review_refuses_predictions_without_image_keys_or_other_images(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(repo)
    y, noisy, _ = _pair()
    _write(repo, noisy, y, keys=False)
    assert cli.run(["review"]) == 2
    assert "does not say which test image" in capsys.readouterr().err
    _write(repo, noisy[:100], y[:100])
    assert cli.run(["review"]) == 2
    assert "different test images" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"no metrics/eval/predictions\.csv"):
        rv.read_side(repo / "nowhere", None)


def test_the_default_is_main_off_main_and_head_on_it(repo: Path) -> None:
    assert rv.default_rev(repo) == "HEAD"
    _git(repo, "checkout", "-q", "-b", "feature")
    assert rv.default_rev(repo) == "main"
    _git(repo, "branch", "-q", "-m", "main", "trunk")  # no main, no origin/main: no guess
    with pytest.raises(DataError, match="no main branch"):
        rv.default_rev(repo)


def test_an_unknown_revision_is_one_clear_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(repo)
    assert cli.run(["review", "nosuch"]) == 2
    assert "nosuch: no such commit" in capsys.readouterr().err


def test_folder_sources_pair_by_file_and_a_relabelled_image_is_refused(repo: Path) -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.2, 0.7, 0.4, 0.9])
    files = np.array(["a.png", "b.png", "c.png", "d.png"])
    a = pd.DataFrame(
        {
            "split": "test",
            "index": [0, 1, 2, 3],
            "file": files,
            "actual": np.where(y == 1, "pneumonia", "normal"),
            "probability": p,
        }
    )
    # one more file readable on the other side: the indices move, the files do not
    b = a.copy()
    b["index"] = [0, 2, 3, 4]
    ya, pa, pb = rv.pair(rv.Side("a", a, 0.5), rv.Side("b", b.iloc[::-1], 0.5))
    assert ya.tolist() == y.tolist() and pa.tolist() == pb.tolist() == p.tolist()
    b.loc[0, "actual"] = "pneumonia"
    with pytest.raises(DataError, match="different labels"):
        rv.pair(rv.Side("a", a, 0.5), rv.Side("b", b, 0.5))


def test_the_table_fits_a_hundred_columns_whatever_the_revision_is_called() -> None:
    y, noisy, sharp = _pair()
    rows = rv.paired_bootstrap(
        y, noisy, sharp, 0.5, 0.5, resamples=50, level=0.95, rng=np.random.default_rng(0)
    )
    long = "origin/some-rather-long-feature-branch-name~3"
    r = rv.Review(long, "abc1234", "workspace", len(y), 0.95, 50, rows, None, False)
    assert max(len(line) for line in rv.render(r).splitlines()) <= 100
