"""Each stage's main(argv) on temp paths and tiny data, in pipeline order."""

import importlib
import json
import shlex

import mlflow
import numpy as np
import pytest
import torch
import yaml

from pneumogan import data
from pneumogan.io import DataError, load_split
from pneumogan.params import ParamsError
from stages import download, train, train_gan
from tests.conftest import ROOT, tiny_params

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_raw_dir):
    """Run every stage once, with the arguments dvc.yaml gives it, inside one temp directory."""
    d = tmp_path_factory.mktemp("stages")
    (d / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    mp = pytest.MonkeyPatch()
    mp.setenv(data.DATA_DIR_ENV, str(tiny_raw_dir))
    for name, spec in DVC["stages"].items():
        _, _, module, *args = shlex.split(spec["cmd"])
        assert module == f"stages.{name}"
        args = [a if a.startswith("--") else str(d / a) for a in args]
        importlib.import_module(module).main(["--params", str(d / "params.yaml"), *args])
    mp.undo()
    return d


def test_download_writes_raw_and_provenance(run_dir):
    prov = json.loads((run_dir / "data/raw/provenance.json").read_text())
    assert prov["official"] is False and prov["n_samples"] == {"train": 48, "val": 16, "test": 16}
    assert (run_dir / "data/raw/pneumoniamnist.npz").is_file()


def test_split_counts(run_dir):
    counts = json.loads((run_dir / "metrics/split.json").read_text())
    assert counts["train"] == {"normal": 12, "pneumonia": 36, "total": 48}


def test_gan_outputs(run_dir):
    losses = (run_dir / "metrics/gan/losses.csv").read_text().splitlines()
    assert losses[0] == "epoch,loss_d,loss_g,d_real,d_fake" and len(losses) == 3
    assert sorted(p.name for p in (run_dir / "metrics/gan/samples").iterdir()) == [
        "epoch_0001.png",
        "epoch_0002.png",
    ]
    assert (run_dir / "metrics/gan/losses.png").stat().st_size > 0
    fid = (run_dir / "metrics/gan/fid.csv").read_text().splitlines()
    assert fid[0] == "epoch,fid_heldout" and len(fid) == 3


def test_gan_quality_metrics(run_dir):
    report = json.loads((run_dir / "metrics/gan.json").read_text())
    for probe in ("synthetic", "real_heldout", "other_class"):
        assert set(report[probe]) == {
            "fid",
            "kid",
            "kid_std",
            "nearest_k",
            "precision",
            "recall",
            "density",
            "coverage",
        }
        assert report[probe]["fid"] >= 0
    assert report["n"] == {"probe": 6, "train_minority": 12, "synthetic": 24}
    assert report["generator"]["variant"] == "dcgan"
    assert report["generator"]["kept_epoch"] in (1, 2)
    assert 0 <= report["memorisation"]["share_synthetic"] <= 1
    assert json.loads((run_dir / "metrics/reference.json").read_text())["epochs_run"] == 1


def test_synthesize_makes_exactly_what_is_missing(run_dir):
    images, labels = load_split(run_dir / "data/synthetic/synthetic.npz", need_both_classes=False)
    assert images.shape == (24, 28, 28) and set(labels.tolist()) == {0}


def test_fuse_balances(run_dir):
    comp = json.loads((run_dir / "metrics/fuse.json").read_text())
    assert comp["synthetic"] == 24 and comp["total"] == 72 and comp["ratio"] == 1.0
    _, labels = load_split(run_dir / "data/fused/train.npz")
    assert np.bincount(labels).tolist() == [36, 36]


def test_train_and_evaluate_outputs(run_dir):
    summary = json.loads((run_dir / "metrics/train.json").read_text())
    assert summary["epochs_run"] == 2 and summary["best_epoch"] in (1, 2)
    assert summary["device"] == "cpu" and summary["torch"] == torch.__version__
    scores = json.loads((run_dir / "metrics/eval.json").read_text())
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
    assert {p.name for p in (run_dir / "metrics/eval").iterdir()} == {
        "roc.csv",
        "pr.csv",
        "predictions.csv",
        "evaluation.png",
        "reliability.csv",
        "reliability.png",
        "errors.png",
    }
    for name, ci in scores["ci"].items():
        assert ci["low"] <= scores[name] <= ci["high"]
    vt = scores["val_threshold"]
    assert 0 < vt["threshold"] <= 1 and vt["tp"] + vt["fp"] + vt["tn"] + vt["fn"] == 16
    assert 0 <= scores["ece"] <= 1


def test_mlflow_has_one_run_per_stage_with_params_metrics_artifacts(run_dir):
    runs = mlflow.search_runs(experiment_names=["pneumogan"], output_format="list")
    by_stage = {r.data.tags["stage"]: r for r in runs}
    assert set(by_stage) >= {
        "download",
        "split",
        "reference",
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
    assert "classifier.pt" in artifacts


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
                str(run_dir / "data/fused/train.npz"),
                "--val",
                str(run_dir / "data/split/val.npz"),
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
    images, labels = load_split(run_dir / "data/split/train.npz")
    np.savez(tmp_path / "train.npz", images=images[labels == 1], labels=labels[labels == 1])
    out = tmp_path / "gan.pt"
    with pytest.raises(DataError, match="holds only class"):
        train_gan.main(
            [
                "--params",
                str(run_dir / "params.yaml"),
                "--train",
                str(tmp_path / "train.npz"),
                "--val",
                str(run_dir / "data/split/val.npz"),
                "--reference",
                str(run_dir / "models/reference.pt"),
                "--model",
                str(out),
                "--losses",
                str(tmp_path / "l.csv"),
                "--fid",
                str(tmp_path / "f.csv"),
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
