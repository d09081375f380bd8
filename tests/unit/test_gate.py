"""The input gate: its score and threshold, what it flags, and that every consumer of the model
(torch predictor, checkpoint, ONNX graph, MLflow model, CLI, app) gives the same score and
decision (issue #32: "anything gets a confident call")."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.covariance import LedoitWolf

from pneumogan.classify.checkpoint import load_classifier, save_classifier
from pneumogan.classify.gate import features, fit_gate
from pneumogan.classify.nets import ClassifierConfig, Ensemble, ShiftTTA, build
from pneumogan.classify.predictor import gate_scores, predict, predict_proba
from pneumogan.classify.train import with_gate
from pneumogan.core.checkpoint import load_checkpoint
from pneumogan.core.registry import CLASSIFIERS
from pneumogan.core.transforms import ImageTransform
from pneumogan.data.readers import fit
from pneumogan.evaluate import ood
from pneumogan.serve import app, cli
from pneumogan.serve.mlflow_model import ClassifierModel, metadata
from pneumogan.serve.onnx_export import export_onnx, gate_parity
from pneumogan.serve.onnx_runtime import FLAG, OUTPUT, SCORE, load_onnx
from tests.conftest import (
    tiny_classifier,
    tiny_classifier_file,
    tiny_gated_classifier,
    xray_split,
)


@pytest.fixture(scope="module")
def gated():
    return tiny_gated_classifier()


@pytest.fixture(scope="module")
def exported(gated, tmp_path_factory):
    """The gated classifier saved, loaded back and exported as ONNX."""
    d = tmp_path_factory.mktemp("gate")
    save_classifier(d / "clf.safetensors", gated)
    export_onnx(load_classifier(d / "clf.safetensors"), d / "clf.onnx", opset=18)
    return d


def x_rays(n=30, seed=5):
    return xray_split(n, np.random.default_rng(seed))[0]


# ---------------------------------------------------------------- the score and its threshold


def test_the_score_is_the_mahalanobis_distance_to_the_nearer_class_mean():
    """Checked against the formula, with sklearn's Ledoit-Wolf covariance of the features
    centred on their class means."""
    rng = np.random.default_rng(0)
    f = torch.from_numpy(rng.normal(size=(60, 5)) * [1, 2, 3, 0.5, 0.1])
    y = np.r_[np.zeros(20), np.ones(40)].astype(int)
    f[y == 1] += 3.0
    gate = fit_gate(f, y, f[:10], 0.9)
    means = np.stack([f.numpy()[y == c].mean(0) for c in (0, 1)])
    cov = LedoitWolf(assume_centered=True).fit(f.numpy() - means[y]).covariance_
    probe = rng.normal(size=(7, 5)) * 4
    precision = np.linalg.inv(cov)
    want = np.sqrt(
        np.min([np.einsum("nd,de,ne->n", probe - m, precision, probe - m) for m in means], 0)
    )
    got = gate(torch.from_numpy(probe)).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert gate.info["features"] == 5 and gate.info["n_train"] == 60


@pytest.mark.parametrize("pass_rate", [0.8, 0.99, 1.0])
def test_the_threshold_passes_at_least_pass_rate_of_validation(pass_rate):
    rng = np.random.default_rng(1)
    f = torch.from_numpy(rng.normal(size=(80, 6)))
    y = np.r_[np.zeros(30), np.ones(50)].astype(int)
    val = torch.from_numpy(rng.normal(size=(50, 6)))
    gate = fit_gate(f, y, val, pass_rate)
    score = gate(val)
    passed = (~gate.flag(score)).float().mean().item()
    assert passed >= pass_rate and passed == pytest.approx(gate.info["val_pass_rate"])
    assert gate.threshold in set(score.tolist())  # a validation image's own score
    assert (gate.flag(score) == (score > gate.threshold)).all()
    assert gate.threshold == float(np.float32(gate.threshold))  # float32 everywhere


def test_fitting_twice_gives_the_same_gate(gated):
    again = tiny_gated_classifier()
    assert again.gate.info == gated.gate.info
    for key, value in gated.gate.tensors().items():
        assert torch.equal(again.gate.tensors()[key], value)


def test_real_looking_x_rays_mostly_pass(gated):
    out = predict(gated, x_rays(60), batch_size=16)
    assert out.flagged.mean() <= 0.2 and out.score.shape == (60,)
    np.testing.assert_allclose(out.p, predict_proba(gated, x_rays(60), batch_size=7), atol=1e-6)


# ---------------------------------------------------------------- what it flags (issue #32)


def _issue_inputs(size: int = 28) -> dict[str, np.ndarray]:
    """The issue's inputs, as `pneumogan predict` and the app make them: read, then `fit`."""
    rng = np.random.default_rng(7)
    return {
        "all_black": np.zeros((size, size), np.uint8),
        "all_white": np.full((size, size), 255, np.uint8),
        "uniform_noise": rng.integers(0, 256, (size, size), dtype=np.uint8),
        "one_pixel": fit(np.full((1, 1), 120, np.uint8), size),
        "sliver_3x60000": fit(rng.integers(0, 256, (3, 60000), dtype=np.uint8), size),
    }


@pytest.mark.parametrize("name", list(_issue_inputs()))
def test_the_issues_inputs_are_flagged(gated, name):
    """Black got P(pneumonia) 0.967, white 0.9996, noise 0.988, a 1-pixel image and a sliver
    0.993, with nothing to say they were not X-rays."""
    image = np.stack([_issue_inputs()[name]])
    out = predict(gated, image, batch_size=1)
    assert out.flagged.tolist() == [True], (name, out.score, gated.gate.threshold)


def test_every_generated_non_x_ray_kind_is_flagged(gated):
    sets = ood.non_xrays(28, np.random.default_rng(0), n=20)
    for kind, images in sets.items():
        rate = gate_scores(gated, images, batch_size=32)[1].mean()
        assert rate >= 0.95, (kind, rate)


def test_the_non_x_ray_sets_are_deterministic_and_at_the_models_size():
    a = ood.non_xrays(64, np.random.default_rng(3), n=4)
    b = ood.non_xrays(64, np.random.default_rng(3), n=4)
    assert list(a) == list(ood.KINDS)
    for kind in a:
        assert a[kind].shape == (4, 64, 64) and a[kind].dtype == np.uint8
        np.testing.assert_array_equal(a[kind], b[kind])
    assert (a["black"] == 0).all() and (a["white"] == 255).all()
    assert len(np.unique(a["uniform_noise"])) > 200


def test_the_gate_report_holds_the_pass_and_flag_rates():
    report = ood.gate_report(
        np.array([0, 0, 1, 1, 1]),
        np.array([False, True, False, False, False]),
        {"black": np.array([True, True]), "shapes": np.array([True, False])},
        {"threshold": 3.5, "val_pass_rate": 0.99},
    )
    assert report == {
        "threshold": 3.5,
        "val_pass_rate": 0.99,
        "test_pass_rate": 0.8,
        "test_pass_rate_normal": 0.5,
        "test_pass_rate_pneumonia": 1.0,
        "non_xray_flag_rate": 0.75,
        "flag_rate": {"black": 1.0, "shapes": 0.5},
        "n_per_kind": 2,
    }


# ---------------------------------------------------------------- every network, every wrapper


# Every network class; of the ImageNet backbones (one class, `Backbone`) only VGG-16: the
# gate's covariance is D×D, and DenseNet-121's D = 1024 and ResNet-50's 2048 take many seconds
# on a small CPU. tests/unit/test_backbones.py checks every backbone's `features` is N×D.
GATED_ARCHS = [a for a in CLASSIFIERS.names() if a not in CLASSIFIERS.names("backbone")]


@pytest.mark.parametrize("arch", [*GATED_ARCHS, "vgg16"])
def test_every_registered_network_gives_the_gate_its_features(arch):
    """Each network's `features` is its pooled penultimate layer, N×D, and a gate fits on it."""
    torch.manual_seed(0)
    cfg = ClassifierConfig.for_arch(arch, 32, 4)
    rng = np.random.default_rng(0)
    train, val = xray_split(9, rng, 32), xray_split(6, rng, 32)
    # the train stage's own path
    clf = with_gate(_as_classifier(build(cfg).eval(), cfg, 32), train, val, 0.99, batch_size=8)
    f = features(clf.model, clf.transform.encode(train[0]), batch_size=4)
    assert f.ndim == 2 and f.shape[0] == 9 and clf.gate.dim == f.shape[1]
    score, _ = gate_scores(clf, val[0], batch_size=8)
    assert score.shape == (6,) and np.isfinite(score).all()
    assert score.max() == pytest.approx(clf.gate.threshold, rel=1e-5)  # pass_rate 0.99 of 6
    assert predict(clf, np.full((1, 32, 32), 255, np.uint8), batch_size=1).score.shape == (1,)


def _as_classifier(model, cfg, size):
    from pneumogan.classify.checkpoint import Classifier

    return Classifier(model, cfg, ImageTransform(size=size), {})


def test_an_ensemble_and_test_time_augmentation_gate_on_their_features():
    torch.manual_seed(0)
    cfg = ClassifierConfig("resnet_small", 28, 4, members=2, tta_shift=1.0)
    model = build(cfg).eval()
    assert isinstance(model, ShiftTTA) and isinstance(model.net, Ensemble)
    rng = np.random.default_rng(0)
    clf = with_gate(
        _as_classifier(model, cfg, 28), xray_split(30, rng), xray_split(12, rng), 0.99, batch_size=8
    )
    assert clf.gate.dim == 2 * 16  # both members' pooled features
    assert predict(clf, _issue_inputs()["all_white"][None], batch_size=1).flagged.tolist() == [True]


# ---------------------------------------------------------------- stored with the model


def test_the_checkpoint_keeps_the_gate(gated, exported):
    tensors, meta = load_checkpoint(exported / "clf.safetensors", "classifier", "train")
    assert {"gate.centres", "gate.whiten"} <= set(tensors)
    assert meta["gate"] == gated.gate.info and meta["gate"]["method"] == "mahalanobis"
    loaded = load_classifier(exported / "clf.safetensors")
    assert loaded.gate.threshold == gated.gate.threshold
    images = np.concatenate([x_rays(), *[v[None] for v in _issue_inputs().values()]])
    a, b = predict(gated, images, batch_size=8), predict(loaded, images, batch_size=5)
    np.testing.assert_array_equal(a.p, b.p)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-6)
    np.testing.assert_array_equal(a.flagged, b.flagged)


def test_a_checkpoint_without_a_gate_still_loads_and_predicts(tmp_path):
    """Checkpoints written before the gate: no gate, no score, every image called."""
    path = tiny_classifier_file(tmp_path / "old.safetensors")
    _, meta = load_checkpoint(path, "classifier", "train")
    assert "gate" not in meta
    old = load_classifier(path)
    assert old.gate is None
    out = predict(old, x_rays(4), batch_size=4)
    assert out.score is None and out.flagged is None
    np.testing.assert_array_equal(out.p, predict_proba(tiny_classifier(), x_rays(4), batch_size=4))
    with pytest.raises(ValueError, match="no input gate"):
        gate_scores(old, x_rays(2), batch_size=2)
    export_onnx(old, tmp_path / "old.onnx", opset=18)
    graph = load_onnx(tmp_path / "old.onnx")
    assert not graph.gated and graph.gate_threshold is None
    assert [o.name for o in graph.session.get_outputs()] == [OUTPUT]
    p, score, flag = graph.predict(x_rays(4), batch_size=3)
    assert score is None and flag is None
    np.testing.assert_allclose(p, out.p, atol=1e-6)
    model = ClassifierModel()
    model.load_context(SimpleNamespace(artifacts={"checkpoint": str(path)}))
    frame = model.predict(None, x_rays(4))
    assert list(frame.columns) == ["p_normal", "p_pneumonia"]
    assert "gate" not in metadata(old)


# ---------------------------------------------------------------- the same answer everywhere


def test_the_onnx_graph_outputs_the_score_and_the_decision(gated, exported):
    graph = load_onnx(exported / "clf.onnx")
    assert [o.name for o in graph.session.get_outputs()] == [OUTPUT, SCORE, FLAG]
    assert graph.gate_threshold == gated.gate.threshold
    assert graph.meta["gate"] == gated.gate.info
    images = np.concatenate([x_rays(40), *ood.non_xrays(28, np.random.default_rng(2), 3).values()])
    p, score, flag = graph.predict(images, batch_size=16)
    want = predict(gated, images, batch_size=16)
    np.testing.assert_allclose(p, want.p, rtol=0, atol=1e-5)
    diff = gate_parity(want.score, want.flagged, score, flag)
    assert diff["gate_max_rel_diff"] < 1e-5 and diff["gate_flips"] == 0
    assert flag.any() and not flag.all()  # both decisions are exercised


def test_torch_onnx_mlflow_cli_and_app_agree_on_score_and_decision(gated, exported, tmp_path):
    """The same images through every consumer: the same P(pneumonia), score and decision; a
    flagged image keeps its probabilities but gets no label."""
    images = np.concatenate([x_rays(12), *[v[None] for v in _issue_inputs().values()]])
    names = [f"img_{i:02d}.png" for i in range(len(images))]
    for name, image in zip(names, images, strict=True):
        Image.fromarray(image).save(tmp_path / name)
    want = predict(gated, images, batch_size=8)
    assert want.flagged[-5:].all() and not want.flagged[:12].all()

    answers = {}
    for how, model, extra in (
        ("torch", exported / "clf.safetensors", []),
        ("onnx", exported / "clf.onnx", ["--onnx"]),
    ):
        out = tmp_path / f"{how}.json"
        argv = ["predict", str(tmp_path), "--model", str(model), "--threshold", "0.5"]
        assert cli.run([*argv, *extra, "--json", str(out)]) == 0
        doc = json.loads(out.read_text())
        assert doc["gate_threshold"] == gated.gate.threshold
        answers[how] = doc["predictions"]

    model = ClassifierModel()
    model.load_context(SimpleNamespace(artifacts={"checkpoint": str(exported / "clf.safetensors")}))
    frame = model.predict(None, images)
    assert list(frame.columns) == ["p_normal", "p_pneumonia", "ood_score", "ood_flag"]
    shown = app.calls(load_classifier(exported / "clf.safetensors"), images, 0.5)

    for rows in answers.values():
        assert [r["file"].rsplit("/", 1)[-1] for r in rows] == names
        np.testing.assert_allclose([r["p_pneumonia"] for r in rows], want.p, atol=1e-5)
        np.testing.assert_allclose([r["ood_score"] for r in rows], want.score, rtol=1e-5)
        assert [r["gate"] == "flagged" for r in rows] == want.flagged.tolist()
        assert [r["label"] is None for r in rows] == want.flagged.tolist()
    np.testing.assert_allclose(frame["p_pneumonia"], want.p, atol=1e-7)
    np.testing.assert_allclose(frame["ood_score"], want.score, rtol=1e-6)
    assert frame["ood_flag"].tolist() == want.flagged.tolist()
    assert [r["gate"] == "flagged" for r in shown] == want.flagged.tolist()
    assert [r["label"] for r in shown] == [r["label"] for r in answers["torch"]]
    assert metadata(gated)["gate"]["threshold"] == gated.gate.threshold


def test_the_table_marks_a_flagged_image_and_withholds_its_call(gated, exported, tmp_path, capsys):
    Image.fromarray(x_rays(1)[0]).save(tmp_path / "a_xray.png")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "b_black.png")
    argv = ["predict", str(tmp_path), "--model", str(exported / "clf.safetensors")]
    assert cli.run([*argv, "--threshold", "0.5", "--csv", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(f"gate: OOD score above {gated.gate.threshold:.4g} is flagged")
    assert out[2].split()[-3:] == ["score", "gate", "label"]
    black = out[4].split()
    assert black[0].endswith("b_black.png") and black[-2:] == ["flagged", "—"]
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "file,p_normal,p_pneumonia,ood_score,gate,label"
    assert rows[2].endswith(",flagged,")  # no label
    csv_text = app.results_csv(
        ["b.png"], app.calls(gated, np.zeros((1, 28, 28), np.uint8), 0.5), 0.5
    )
    assert csv_text.splitlines()[1].split(",")[-3:] == ["flagged", "", "0.5"]
