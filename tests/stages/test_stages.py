"""Each stage's main(argv) on temp paths and tiny data, in pipeline order."""

import csv
import importlib
import json
import math
import shlex

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from pneumogan.classify.checkpoint import load_classifier
from pneumogan.core.choices import LABELS
from pneumogan.core.errors import DataError, ParamsError
from pneumogan.core.params import PIPELINE_FILE, load_params, stage_slice
from pneumogan.data import medmnist
from pneumogan.data.contract import load_sources, load_split
from pneumogan.evaluate import ood
from pneumogan.generate.checkpoint import load_generator
from pneumogan.serve import app, cli, mlflow_model, onnx_runtime
from pneumogan.serve.onnx_runtime import load_onnx
from stages import check_params, download, evaluate, export, split, synthesize, train, train_gan
from tests.conftest import ROOT, make_medmnist, tiny_params

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_raw_dir):
    """Run every stage once, with the arguments dvc.yaml gives it, inside one temp directory."""
    d = tmp_path_factory.mktemp("stages")
    (d / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    mp = pytest.MonkeyPatch()
    mp.setenv(medmnist.DATA_DIR_ENV, str(tiny_raw_dir))
    for name, spec in DVC["stages"].items():
        _, _, module, *args = shlex.split(spec["cmd"])
        assert module == f"stages.{name}"
        args = [a if a.startswith("--") else str(d / a) for a in args]
        importlib.import_module(module).main(args)
    mp.undo()
    return d


def stage_args(d, name: str, **changes) -> list[str]:
    """The stage's dvc.yaml arguments under `d`, with some paths replaced."""
    _, _, _, *args = shlex.split(DVC["stages"][name]["cmd"])
    out = []
    for flag, value in zip(args[::2], args[1::2], strict=True):
        out += [flag, str(changes.get(flag.lstrip("-"), d / value))]
    return out


def snapshot(d) -> dict:
    return {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and ".tmp" not in p.name}


def test_check_params_writes_one_slice_per_stage(run_dir):
    """And, beside them, every param (for MLflow only: no stage depends on that file)."""
    written = {p.name for p in (run_dir / "data/params").iterdir()}
    slices = {name.removesuffix(".json") for name in written - {PIPELINE_FILE}}
    assert slices == set(DVC["stages"]) - {"check_params"} and PIPELINE_FILE in written
    params = load_params(run_dir / "params.yaml")
    for name in slices:
        got = json.loads((run_dir / f"data/params/{name}.json").read_text())
        assert got == json.loads(json.dumps(stage_slice(params, name)))
    every = json.loads((run_dir / "data/params" / PIPELINE_FILE).read_text())
    assert every == params.model_dump(mode="json")


def test_download_writes_raw_and_provenance(run_dir):
    prov = json.loads((run_dir / "data/raw/provenance.json").read_text())
    assert prov["official"] is False and prov["n_samples"] == {"train": 48, "val": 16, "test": 16}
    assert (run_dir / "data/raw/pneumoniamnist.npz").is_file()


def test_raw_data_bytes_do_not_depend_on_where_the_copy_was(tmp_path, run_dir, tiny_raw_dir):
    """Two spellings of one data directory (and a symlink to it) give the same data/raw."""
    slice_file = str(run_dir / "data/params/download.json")
    (tmp_path / "link").symlink_to(tiny_raw_dir)
    spellings = [str(tiny_raw_dir), f"{tiny_raw_dir}/./", str(tmp_path / "link")]
    outs = []
    for i, spelling in enumerate(spellings):
        mp = pytest.MonkeyPatch()
        mp.setenv(medmnist.DATA_DIR_ENV, spelling)
        try:
            download.main(["--params", slice_file, "--out", str(tmp_path / f"raw{i}")])
        finally:
            mp.undo()
        outs.append(snapshot(tmp_path / f"raw{i}").values())
    assert outs[0] and all(list(o) == list(outs[0]) for o in outs)
    assert "pneumoniamnist.npz" in (tmp_path / "raw0/provenance.json").read_text()
    assert str(tiny_raw_dir) not in (tmp_path / "raw0/provenance.json").read_text()


def test_split_of_a_raw_file_at_another_size_fails_and_writes_nothing(tmp_path, run_dir):
    (tmp_path / "raw").mkdir()
    np.savez(tmp_path / "raw/pneumoniamnist_64.npz", **make_medmnist(size=64))
    out = tmp_path / "split"
    argv = stage_args(run_dir, "split", raw=tmp_path / "raw", out=out, metrics=tmp_path / "m.json")
    with pytest.raises(DataError, match=r"images are 64 px, expected 28 px \(data\.image_size\)"):
        split.main(argv)
    assert not out.exists() and not (tmp_path / "m.json").exists()


def test_split_counts(run_dir):
    counts = json.loads((run_dir / "metrics/split.json").read_text())
    assert counts["train"] == {"normal": 12, "pneumonia": 36, "total": 48}


def test_eda_summarises_every_split_and_draws_its_figures(run_dir):
    summary = json.loads((run_dir / "metrics/eda.json").read_text())
    counts = json.loads((run_dir / "metrics/split.json").read_text())
    for part, row in summary.items():
        assert row["total"] == counts[part]["total"]
        assert row["normal"]["images"] == counts[part]["normal"]
        assert 0 < row["pneumonia"]["pixel_mean"] < 1
    assert summary["train"]["minority_to_majority"] == round(12 / 36, 4)
    bars = (run_dir / "metrics/eda/counts.csv").read_text().splitlines()
    assert bars[0] == "group,images" and "train normal,12" in bars and len(bars) == 7
    hist = np.genfromtxt(run_dir / "metrics/eda/intensity.csv", delimiter=",", names=True)
    assert len(hist) == tiny_params()["eda"]["bins"]
    for col in hist.dtype.names[1:]:
        assert abs(hist[col].sum() - 1) < 1e-4, col  # each a distribution
    for name in ("intensity", "samples", "sizes"):
        assert Image.open(run_dir / f"metrics/eda/{name}.png").size[0] > 200


def test_gan_outputs(run_dir):
    losses = (run_dir / "metrics/gan/losses.csv").read_text().splitlines()
    assert losses[0] == "epoch,loss_d,loss_g,d_real,d_fake" and len(losses) == 3
    assert sorted(p.name for p in (run_dir / "metrics/gan/samples").iterdir()) == [
        "epoch_0001.png",
        "epoch_0002.png",
    ]
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
    assert report["kept_epoch"] in (1, 2)
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
    assert all(isinstance(v, int | float) for v in summary.values())  # no strings in metrics

    info = load_classifier(run_dir / "models/classifier.safetensors").info
    assert info["device"] == "cpu" and info["torch"] == torch.__version__
    scores = json.loads((run_dir / "metrics/eval.json").read_text())
    assert 0.0 <= scores["auc"] <= 1.0
    for key in ("accuracy", "sensitivity", "specificity", "precision", "f1", "balanced_accuracy"):
        assert 0.0 <= scores[key] <= 1.0
    assert scores["threshold"] == 0.5
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
        point = scores[name]
        assert ci["low"] <= point <= ci["high"]
    vt = scores["at_val_threshold"]
    assert 0 < vt["threshold"] <= 1 and vt["tp"] + vt["fp"] + vt["tn"] + vt["fn"] == 16
    predictions = pd.read_csv(run_dir / "metrics/eval/predictions.csv")
    assert list(predictions.columns) == [
        "split",
        "index",
        "actual",
        "predicted",
        "probability",
        "ood_score",
    ]
    assert set(predictions["actual"]) == {"normal", "pneumonia"}
    # Rows in the raw file's order: a row is found again by its split and index there.
    assert predictions.equals(predictions.sort_values(["split", "index"]))
    raw = np.load(next((run_dir / "data/raw").glob("*.npz")))
    for row in predictions.itertuples():
        assert raw[f"{row.split}_labels"].reshape(-1)[row.index] == (row.actual == "pneumonia")
    assert 0 <= scores["ece"] <= 1
    headline = json.loads((run_dir / "metrics/headline.json").read_text())
    assert list(headline) == [
        "accuracy",
        "auc",
        "balanced_accuracy",
        "brier",
        "sensitivity",
        "specificity",
    ]
    assert all(headline[k] == scores[k] for k in headline)
    # the input gate, fitted by train on the real training split
    gate = scores["gate"]
    assert set(gate) == {
        "threshold",
        "val_pass_rate",
        "test_pass_rate",
        "test_pass_rate_normal",
        "test_pass_rate_pneumonia",
        "non_xray_flag_rate",
        "flag_rate",
        "n_per_kind",
    }
    assert set(gate["flag_rate"]) == set(ood.KINDS) and gate["n_per_kind"] == ood.PER_KIND
    assert gate["val_pass_rate"] >= tiny_params()["train"]["gate_pass_rate"]
    rates = [gate["test_pass_rate"], gate["non_xray_flag_rate"], *gate["flag_rate"].values()]
    assert all(0 <= r <= 1 for r in rates)
    clf = load_classifier(run_dir / "models/classifier.safetensors")
    assert clf.gate.info["n_train"] == 48  # the real training split, not the fused set (72)
    assert clf.gate.threshold == gate["threshold"]
    flagged = predictions["ood_score"] > gate["threshold"]
    assert 1 - flagged.mean() == pytest.approx(gate["test_pass_rate"], abs=1e-6)


def test_explain_draws_the_gradcam_grid(run_dir):
    image = Image.open(run_dir / "metrics/explain/gradcam.png")
    assert image.size[0] > 200 and image.size[1] > 200


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
    assert "classifier.safetensors" in artifacts
    assert tr.data.tags["device"] == "cpu"


def test_bad_params_fail_in_check_params_before_any_slice(tmp_path):
    params = tiny_params()
    params["train"]["epochs"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"train\.epochs = 0"):
        check_params.main(["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "p")])
    assert not (tmp_path / "p").exists()


def test_a_study_groups_the_runs_and_changes_no_slice(tmp_path, run_dir):
    """`study` reaches MLflow through the file check_params writes beside the slices."""

    params = tiny_params()
    params["study"] = "unit"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    check_params.main(["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "p")])
    for name in DVC["stages"]:
        if name != "check_params":
            ours = (tmp_path / f"p/{name}.json").read_bytes()
            assert ours == (run_dir / f"data/params/{name}.json").read_bytes(), name
    out = {"params": tmp_path / "p/split.json", "out": tmp_path / "s", "metrics": tmp_path / "m"}
    split.main(stage_args(run_dir, "split", **out))
    runs = mlflow.search_runs(experiment_names=["pneumogan-study-unit"], output_format="list")
    assert [(r.data.tags["stage"], r.data.tags["study"]) for r in runs] == [("split", "unit")]


def test_a_hand_edited_slice_is_rechecked(tmp_path, run_dir):
    bad = json.loads((run_dir / "data/params/train.json").read_text())
    bad["mixup"] = -1
    (tmp_path / "train.json").write_text(json.dumps(bad))
    out = tmp_path / "clf.safetensors"
    args = stage_args(run_dir, "train", params=tmp_path / "train.json", model=out)
    with pytest.raises(ParamsError, match=r"mixup = -1.0: out of range"):
        train.main(args)
    assert not out.exists()


@pytest.mark.parametrize("stage", ["synthesize", "evaluate"])
@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"\x08\x00\x00\x00\x00\x00"])
def test_a_bad_checkpoint_fails_cleanly_and_keeps_the_outputs(tmp_path, run_dir, stage, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    flag = "model"
    before = snapshot(run_dir)
    with pytest.raises(DataError, match=r"bad\.safetensors: not a pneumogan checkpoint"):
        {"synthesize": synthesize, "evaluate": evaluate}[stage].main(
            stage_args(run_dir, stage, **{flag: bad})
        )
    assert snapshot(run_dir) == before


def test_single_class_split_fails_and_writes_nothing(tmp_path, run_dir):
    images, labels = load_split(run_dir / "data/split/train.npz")
    np.savez(tmp_path / "train.npz", images=images[labels == 1], labels=labels[labels == 1])
    out = tmp_path / "gan.safetensors"
    args = stage_args(
        run_dir,
        "train_gan",
        train=tmp_path / "train.npz",
        model=out,
        losses=tmp_path / "l.csv",
        fid=tmp_path / "f.csv",
        samples=tmp_path / "s",
    )
    with pytest.raises(DataError, match="of class pneumonia \\(1\\) only"):
        train_gan.main(args)
    assert not out.exists() and not (tmp_path / "l.csv").exists()


def test_download_without_network_or_copy_leaves_nothing(tmp_path, run_dir):
    slice_file = run_dir / "data/params/download.json"
    with pytest.raises(DataError, match="Could not download"):
        download.main(["--params", str(slice_file), "--out", str(tmp_path / "raw")])
    assert list(tmp_path.iterdir()) == []


def gan_stages(tmp_path, run_dir, params) -> None:
    """check_params, train_gan and synthesize with `params`, writing into `tmp_path`: the slices
    in p/, the checkpoint gan.safetensors, the loss and FID tables l.csv and f.csv, the samples
    in s/, the synthetic set in syn/ and its report gan.json."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    check_params.main(["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "p")])
    out = {
        "params": tmp_path / "p/train_gan.json",
        "model": tmp_path / "gan.safetensors",
        "losses": tmp_path / "l.csv",
        "fid": tmp_path / "f.csv",
        "samples": tmp_path / "s",
    }
    train_gan.main(stage_args(run_dir, "train_gan", **out))
    syn = {
        "params": tmp_path / "p/synthesize.json",
        "out": tmp_path / "syn",
        "metrics": tmp_path / "gan.json",
        "preview": tmp_path / "prev.png",
        "model": tmp_path / "gan.safetensors",
    }
    synthesize.main(stage_args(run_dir, "synthesize", **syn))


def test_gan_stages_without_the_gan_method_write_stand_ins(tmp_path, run_dir):
    params = tiny_params()
    params["fuse"]["method"] = "oversample"
    gan_stages(tmp_path, run_dir, params)
    assert (tmp_path / "l.csv").read_text() == "epoch,loss_d,loss_g,d_real,d_fake\n"
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["skipped.png"]
    images, labels = load_split(tmp_path / "syn/synthetic.npz", need_both_classes=False)
    assert images.shape == (0, 28, 28) and labels.shape == (0,)
    assert json.loads((tmp_path / "gan.json").read_text()) == {}
    with pytest.raises(DataError, match="holds a 'skipped'"):
        load_generator(tmp_path / "gan.safetensors")


def test_predict_cli_on_pngs_of_test_images_gives_the_evaluated_probabilities(tmp_path, run_dir):
    """A PNG written from a test image gets the probability evaluate wrote for it."""

    images, _ = load_split(run_dir / "data/split/test.npz")
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"test_{i:03d}.png")
    out = tmp_path / "p.json"
    model, metrics = run_dir / "models/classifier.safetensors", run_dir / "metrics/eval.json"
    args = ["predict", str(tmp_path), "--model", str(model), "--metrics", str(metrics)]
    assert cli.run([*args, "--json", str(out)]) == 0
    got = [r["p_pneumonia"] for r in json.loads(out.read_text())["predictions"]]
    sources = load_sources(run_dir / "data/split/test.npz")
    with (run_dir / "metrics/eval/predictions.csv").open() as f:
        by_image = {
            (r["split"], int(r["index"])): float(r["probability"]) for r in csv.DictReader(f)
        }
    evaluated = [
        by_image[(str(s), int(i))]
        for s, i in zip(sources["source_split"], sources["source_index"], strict=True)
    ]
    np.testing.assert_allclose(got, evaluated, atol=1e-5)


def test_export_writes_an_onnx_graph_that_agrees_with_the_checkpoint(run_dir):
    scores = json.loads((run_dir / "metrics/export.json").read_text())
    assert scores["n"] == 16 and scores["label_flips"] == 0
    assert 0 <= scores["max_abs_diff"] <= 1e-5
    assert scores["gate_flips"] == 0 and 0 <= scores["gate_max_rel_diff"] <= 1e-3
    graph = load_onnx(run_dir / "models/classifier.onnx")
    assert graph.size == 28 and graph.meta["transform"]["low"] == -1.0


def test_export_over_the_parity_limit_fails_and_writes_nothing(tmp_path, run_dir, monkeypatch):
    real = onnx_runtime.OnnxClassifier.predict

    def off_by_a_bit(self, images, *, batch_size):
        p, score, flag = real(self, images, batch_size=batch_size)
        return p + 1e-3, score, flag

    monkeypatch.setattr(onnx_runtime.OnnxClassifier, "predict", off_by_a_bit)
    out, metrics = tmp_path / "models/classifier.onnx", tmp_path / "export.json"
    argv = stage_args(run_dir, "export", out=out, metrics=metrics)
    with pytest.raises(DataError, match=r"over export\.max_abs_diff"):
        export.main(argv)
    assert not out.exists() and not metrics.exists()
    assert list((tmp_path / "models").iterdir()) == []  # no temporary left behind


def test_predict_onnx_gives_the_checkpoints_probabilities(tmp_path, run_dir):
    images, _ = load_split(run_dir / "data/split/test.npz")
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"test_{i:03d}.png")
    metrics = str(run_dir / "metrics/eval.json")
    got = {}
    for name, model, extra in (
        ("torch", "models/classifier.safetensors", []),
        ("onnx", "models/classifier.onnx", ["--onnx"]),
    ):
        out = tmp_path / f"{name}.json"
        argv = ["predict", str(tmp_path), "--model", str(run_dir / model), "--metrics", metrics]
        assert cli.run([*argv, *extra, "--json", str(out)]) == 0
        got[name] = [r["p_pneumonia"] for r in json.loads(out.read_text())["predictions"]]
    limit = load_params(run_dir / "params.yaml").export.max_abs_diff
    np.testing.assert_allclose(got["onnx"], got["torch"], rtol=0, atol=limit)
    assert len(got["onnx"]) == 16


def test_an_export_whose_gate_disagrees_fails_and_writes_nothing(tmp_path, run_dir, monkeypatch):
    """The export stage compares the gate's decisions too: one that differs fails it."""
    real = onnx_runtime.OnnxClassifier.predict

    def flips_one(self, images, *, batch_size):
        p, score, flag = real(self, images, batch_size=batch_size)
        flag = flag.copy()
        flag[0] = not flag[0]
        return p, score, flag

    monkeypatch.setattr(onnx_runtime.OnnxClassifier, "predict", flips_one)
    out, metrics = tmp_path / "models/classifier.onnx", tmp_path / "export.json"
    with pytest.raises(
        DataError, match=r"input gate decides otherwise than the checkpoint's on 1 test image"
    ):
        export.main(stage_args(run_dir, "export", out=out, metrics=metrics))
    assert not out.exists() and not metrics.exists()


def test_cli_onnx_mlflow_and_app_agree_on_the_whole_test_split(tmp_path, run_dir):
    """Issue #32's done-when: the same P(pneumonia) and the same gate decision from
    `pneumogan predict` (torch and --onnx), the MLflow model and the app, on every test image,
    and the scores evaluate wrote."""
    images, _ = load_split(run_dir / "data/split/test.npz")
    pics = tmp_path / "pics"
    pics.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(pics / f"test_{i:03d}.png")
    metrics = str(run_dir / "metrics/eval.json")
    model = run_dir / "models/classifier.safetensors"
    got = {}
    for name, path, extra in (
        ("torch", model, []),
        ("onnx", run_dir / "models/classifier.onnx", ["--onnx"]),
    ):
        out = tmp_path / f"{name}.json"
        argv = ["predict", str(pics), "--model", str(path), "--metrics", metrics]
        assert cli.run([*argv, *extra, "--json", str(out)]) == 0
        rows = json.loads(out.read_text())["predictions"]
        got[name] = (
            np.array([r["p_pneumonia"] for r in rows]),
            np.array([r["ood_score"] for r in rows]),
            [r["gate"] == "flagged" for r in rows],
            [r["label"] for r in rows],
        )
    mlflow.set_experiment("gate-parity")
    with mlflow.start_run():
        info = mlflow_model.log_classifier(model, images[:2])
    frame = mlflow.pyfunc.load_model(info.model_uri).predict(images)
    clf = load_classifier(model)
    threshold = json.loads((run_dir / "metrics/eval.json").read_text())["threshold"]
    shown = app.calls(clf, images, threshold)
    p, score, flags, labels = got["torch"]
    limit = load_params(run_dir / "params.yaml").export.max_abs_diff
    np.testing.assert_allclose(got["onnx"][0], p, rtol=0, atol=limit)
    np.testing.assert_allclose(got["onnx"][1], score, rtol=limit)
    np.testing.assert_allclose(frame["p_pneumonia"], p, rtol=0, atol=1e-7)
    np.testing.assert_allclose(frame["ood_score"], score, rtol=1e-6)
    np.testing.assert_allclose([r["ood_score"] for r in shown], score, rtol=1e-6)
    assert got["onnx"][2] == flags == frame["ood_flag"].tolist()
    assert [r["gate"] == "flagged" for r in shown] == flags
    assert got["onnx"][3] == labels == [r["label"] for r in shown]
    # predictions.csv is in the raw file's order, the split in its own
    with (run_dir / "metrics/eval/predictions.csv").open() as f:
        by_image = {(r["split"], int(r["index"])): float(r["ood_score"]) for r in csv.DictReader(f)}
    sources = load_sources(run_dir / "data/split/test.npz")
    evaluated = [
        by_image[(str(s), int(i))]
        for s, i in zip(sources["source_split"], sources["source_index"], strict=True)
    ]
    np.testing.assert_allclose(evaluated, score, rtol=1e-5, atol=1e-5)


def test_train_gan_and_synthesize_with_the_diffusion_variant(tmp_path, run_dir):
    """gan.variant ddpm through the real stages: a checkpoint without D, denoising losses,
    synthetic images and the same quality report as a GAN's."""
    params = tiny_params()
    params["gan"].update(variant="ddpm", width=8, sampling_steps=2, epochs=2)
    gan_stages(tmp_path, run_dir, params)
    losses = (tmp_path / "l.csv").read_text().splitlines()
    assert losses[0] == "epoch,loss" and len(losses) == 3
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 3  # header + 2 checks
    images, labels = load_split(tmp_path / "syn/synthetic.npz", need_both_classes=False)
    real = load_split(run_dir / "data/split/train.npz")
    assert images.shape[1:] == (28, 28) and images.shape[0] > 0 and set(labels) == {0}
    assert images.shape[0] >= (real[1] == 1).sum() - (real[1] == 0).sum()
    report = json.loads((tmp_path / "gan.json").read_text())
    assert math.isfinite(report["synthetic"]["fid"])


@pytest.mark.parametrize(
    ("variant", "extra"),
    [
        ("cgan", {"width": 4}),
        ("progan", {"width": 4}),
        ("cddpm", {"width": 8, "sampling_steps": 2, "ema": 0.9}),
    ],
)
def test_a_conditional_generator_learns_both_classes_and_is_measured_per_class(
    tmp_path, run_dir, variant, extra
):
    """A conditional generator trains on every training image, draws only the minority class
    for fuse, and gan.json adds each class's quality to the minority-only figures."""
    params = tiny_params()
    params["gan"].update(variant=variant, epochs=2, **extra)
    gan_stages(tmp_path, run_dir, params)
    G, _, meta = load_generator(tmp_path / "gan.safetensors")
    train_labels = load_split(run_dir / "data/split/train.npz")[1]
    minority = int(np.argmin(np.bincount(train_labels)))
    assert G.classes == 2 and meta["config"]["classes"] == 2 and meta["label"] == minority
    images, labels = load_split(tmp_path / "syn/synthetic.npz", need_both_classes=False)
    assert images.shape[0] > 0 and set(labels) == {minority}
    report = json.loads((tmp_path / "gan.json").read_text())
    assert math.isfinite(report["synthetic"]["fid"])  # the minority-only figures, as before
    per_class = report["per_class"]
    assert set(per_class) == set(LABELS.values())
    held_out = np.bincount(load_split(run_dir / "data/split/val.npz")[1])
    for c, name in LABELS.items():
        entry = per_class[name]
        drawn = max(len(images), held_out[c]) if c == minority else held_out[c]
        assert entry["n"]["train_minority"] == int((train_labels == c).sum())
        assert entry["n"]["synthetic"] == drawn
        assert 0.0 <= entry["class_agreement"]["synthetic"] <= 1.0
        assert 0.0 <= entry["memorisation"]["share_synthetic"] <= 1.0
        assert math.isfinite(entry["synthetic_vs_heldout"]["fid"])
