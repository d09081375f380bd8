"""Each stage's main(argv) on temp paths and tiny data, in pipeline order."""

import json

import mlflow
import numpy as np
import pytest
import yaml

from pneumogan import data
from pneumogan.io import DataError, load_split
from pneumogan.params import ParamsError
from stages import download, evaluate, fuse, split, synthesize, train, train_gan
from tests.conftest import tiny_params


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_raw_dir):
    """Run all seven stages once, as dvc.yaml wires them, into one temp directory."""
    d = tmp_path_factory.mktemp("stages")
    (d / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    p = ["--params", str(d / "params.yaml")]
    mp = pytest.MonkeyPatch()
    mp.setenv(data.DATA_DIR_ENV, str(tiny_raw_dir))
    download.main([*p, "--out", str(d / "raw")])
    mp.undo()
    split.main(
        [
            *p,
            "--raw",
            str(d / "raw"),
            "--out",
            str(d / "split"),
            "--metrics",
            str(d / "m/split.json"),
        ]
    )
    train_gan.main(
        [
            *p,
            "--train",
            str(d / "split/train.npz"),
            "--model",
            str(d / "gan.pt"),
            "--losses",
            str(d / "m/gan/losses.csv"),
            "--samples",
            str(d / "m/gan/s"),
        ]
    )
    synthesize.main(
        [
            *p,
            "--model",
            str(d / "gan.pt"),
            "--train",
            str(d / "split/train.npz"),
            "--out",
            str(d / "synthetic"),
        ]
    )
    fuse.main(
        [
            *p,
            "--train",
            str(d / "split/train.npz"),
            "--synthetic",
            str(d / "synthetic"),
            "--out",
            str(d / "fused"),
            "--metrics",
            str(d / "m/fuse.json"),
        ]
    )
    train.main(
        [
            *p,
            "--train",
            str(d / "fused/train.npz"),
            "--val",
            str(d / "split/val.npz"),
            "--model",
            str(d / "clf.pt"),
            "--metrics",
            str(d / "m/train.json"),
            "--curves",
            str(d / "m/train/curves.csv"),
        ]
    )
    evaluate.main(
        [
            *p,
            "--model",
            str(d / "clf.pt"),
            "--test",
            str(d / "split/test.npz"),
            "--metrics",
            str(d / "m/eval.json"),
            "--plots",
            str(d / "m/eval"),
        ]
    )
    return d


def test_download_writes_raw_and_provenance(run_dir):
    prov = json.loads((run_dir / "raw/provenance.json").read_text())
    assert prov["official"] is False and prov["n_samples"] == {"train": 48, "val": 16, "test": 16}
    assert (run_dir / "raw/pneumoniamnist.npz").is_file()


def test_split_counts(run_dir):
    counts = json.loads((run_dir / "m/split.json").read_text())
    assert counts["train"] == {"normal": 12, "pneumonia": 36, "total": 48}


def test_gan_outputs(run_dir):
    losses = (run_dir / "m/gan/losses.csv").read_text().splitlines()
    assert losses[0] == "epoch,loss_d,loss_g,d_real,d_fake" and len(losses) == 3
    assert sorted(p.name for p in (run_dir / "m/gan/s").iterdir()) == [
        "epoch_0001.png",
        "epoch_0002.png",
    ]
    assert (run_dir / "m/gan/losses.png").stat().st_size > 0


def test_synthesize_makes_exactly_what_is_missing(run_dir):
    images, labels = load_split(run_dir / "synthetic/synthetic.npz", need_both_classes=False)
    assert images.shape == (24, 28, 28) and set(labels.tolist()) == {0}


def test_fuse_balances(run_dir):
    comp = json.loads((run_dir / "m/fuse.json").read_text())
    assert comp["synthetic"] == 24 and comp["total"] == 72 and comp["ratio"] == 1.0
    _, labels = load_split(run_dir / "fused/train.npz")
    assert np.bincount(labels).tolist() == [36, 36]


def test_train_and_evaluate_outputs(run_dir):
    summary = json.loads((run_dir / "m/train.json").read_text())
    assert summary["epochs_run"] == 2 and summary["best_epoch"] in (1, 2)
    scores = json.loads((run_dir / "m/eval.json").read_text())
    for key in (
        "auc",
        "accuracy",
        "sensitivity",
        "specificity",
        "precision",
        "f1",
        "balanced_accuracy",
    ):
        assert 0.0 <= scores[key] <= 1.0
    assert scores["n"] == 16
    assert {p.name for p in (run_dir / "m/eval").iterdir()} == {
        "roc.csv",
        "pr.csv",
        "predictions.csv",
        "evaluation.png",
    }


def test_mlflow_has_one_run_per_stage_with_params_metrics_artifacts(run_dir):
    runs = mlflow.search_runs(experiment_names=["pneumogan"], output_format="list")
    by_stage = {r.data.tags["stage"]: r for r in runs}
    assert set(by_stage) >= {
        "download",
        "split",
        "train_gan",
        "synthesize",
        "fuse",
        "train",
        "evaluate",
    }
    tr = by_stage["train"]
    assert tr.data.params["mixup"] == "0.2" and "val_auc" in tr.data.metrics
    assert tr.data.params["train.epochs"] == "2" and tr.data.params["seed"] == "42"
    assert tr.data.tags["dvc_experiment"] == "workspace" and tr.data.tags["git_commit"]
    history = mlflow.MlflowClient().get_metric_history(tr.info.run_id, "val_auc")
    assert [m.step for m in history] == [1, 2]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(tr.info.run_id)}
    assert "clf.pt" in artifacts


def test_bad_params_fail_before_writing(tmp_path, run_dir):
    params = tiny_params()
    params["train"]["epochs"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "clf.pt"
    with pytest.raises(ParamsError, match=r"train\.epochs = 0"):
        train.main(
            [
                "--params",
                str(tmp_path / "params.yaml"),
                "--train",
                str(run_dir / "fused/train.npz"),
                "--val",
                str(run_dir / "split/val.npz"),
                "--model",
                str(out),
                "--metrics",
                str(tmp_path / "t.json"),
                "--curves",
                str(tmp_path / "c.csv"),
            ]
        )
    assert not out.exists()


def test_single_class_split_fails_and_writes_nothing(tmp_path, run_dir):
    images, labels = load_split(run_dir / "split/train.npz")
    np.savez(tmp_path / "train.npz", images=images[labels == 1], labels=labels[labels == 1])
    out = tmp_path / "gan.pt"
    with pytest.raises(DataError, match="holds only class"):
        train_gan.main(
            [
                "--params",
                str(run_dir / "params.yaml"),
                "--train",
                str(tmp_path / "train.npz"),
                "--model",
                str(out),
                "--losses",
                str(tmp_path / "l.csv"),
                "--samples",
                str(tmp_path / "s"),
            ]
        )
    assert not out.exists() and not (tmp_path / "l.csv").exists()


def test_download_without_network_or_copy_leaves_nothing(tmp_path, params_file):
    with pytest.raises(DataError, match="Could not download"):
        download.main(["--params", str(params_file), "--out", str(tmp_path / "raw")])
    assert not (tmp_path / "raw").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]
