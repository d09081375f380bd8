"""Seed ensembles (`train.ensemble`): the averaged output, training, checkpoint, ONNX, Grad-CAM."""

import numpy as np
import pytest
import torch
from torch import nn

from pneumogan.classify.checkpoint import Classifier, load_classifier, save_classifier
from pneumogan.classify.nets import ClassifierConfig, Ensemble, build
from pneumogan.classify.predictor import predict_proba
from pneumogan.core.transforms import ImageTransform
from pneumogan.evaluate.explain import cam_layers, gradcam
from pneumogan.serve.onnx_export import export_onnx, parity
from pneumogan.serve.onnx_runtime import load_onnx
from tests.conftest import make_images
from tests.unit.test_classifier import run_training, tiny


class Fixed(nn.Module):
    """A 'network' that returns the same logits whatever it is shown."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float64)

    def forward(self, x):
        return self.logits


@pytest.mark.parametrize(
    "logits", [[[0.0, 2.0, -3.0], [1.0, -1.0, 4.0]], [[40.0, -40.0, 0.0], [30.0, -60.0, 5.0]]]
)
def test_output_is_the_logit_of_the_mean_probability(logits):
    z = torch.tensor(logits, dtype=torch.float64)
    out = Ensemble([Fixed(row) for row in logits])(torch.zeros(3))
    mean_p = torch.sigmoid(z).mean(0)
    torch.testing.assert_close(torch.sigmoid(out), mean_p)
    # exact where sigmoid rounds to 0 or 1: log P and log(1 − P), each from its smaller side
    p, q = torch.sigmoid(z).mean(0), torch.sigmoid(-z).mean(0)
    log_p = torch.where(p < 0.5, torch.log(p), torch.log1p(-q))
    log_q = torch.where(q < 0.5, torch.log(q), torch.log1p(-p))
    logsig = torch.nn.functional.logsigmoid
    torch.testing.assert_close(logsig(out), log_p, rtol=1e-9, atol=0)
    torch.testing.assert_close(logsig(-out), log_q, rtol=1e-9, atol=0)


def test_build_makes_members_of_the_member_config():
    cfg = ClassifierConfig("resnet_small", 28, 4, members=3)
    model = build(cfg)
    assert isinstance(model, Ensemble) and len(model.members) == 3
    assert cfg.member() == ClassifierConfig("resnet_small", 28, 4)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2,)
    assert model.features(torch.zeros(2, 1, 28, 28)).shape == (2, 3 * 16)


@pytest.fixture(scope="module")
def trained():
    single, s1 = run_training()
    torch.manual_seed(0)
    pair, s2 = _train_pair()
    return single, s1, pair, s2


def _train_pair():

    seen = []
    clf, summary = run_training(
        on_epoch=lambda e, m: seen.append((e, m["member"])),
        net=ClassifierConfig("resnet_small", 28, 4, members=2),
    )
    summary["seen"] = seen
    return clf, summary


def test_first_member_is_the_single_network_and_the_second_another(trained):
    single, s1, pair, s2 = trained
    first, second = pair.model.members
    for k, v in single.model.state_dict().items():
        assert torch.equal(v, first.state_dict()[k]), k
    assert not all(
        torch.equal(v, second.state_dict()[k]) for k, v in single.model.state_dict().items()
    )
    assert s2["member1"] == s1
    n1, n2 = s2["member1"]["epochs_run"], s2["member2"]["epochs_run"]
    assert s2["epochs_run"] == n1 + n2
    assert s2["seen"] == [(e, 1) for e in range(1, n1 + 1)] + [
        (e, 2) for e in range(n1 + 1, n1 + n2 + 1)
    ]
    x, y = tiny(4, 6, seed=1)
    from sklearn.metrics import roc_auc_score

    assert s2["best_val_auc"] == pytest.approx(
        roc_auc_score(y, predict_proba(pair, x, batch_size=8))
    )
    assert pair.info["member2"] == s2["member2"] and not pair.model.training


def check_round_trip_and_onnx(clf, tmp_path, atol=0.0, batch=12):
    """Save and load `clf`, export the loaded one as ONNX; both give `clf`'s P(pneumonia)."""
    save_classifier(tmp_path / "m.safetensors", clf)
    loaded = load_classifier(tmp_path / "m.safetensors")
    images = make_images(np.array([0, 1] * 6), np.random.default_rng(2))
    p = predict_proba(clf, images, batch_size=5)
    got = predict_proba(loaded, images, batch_size=batch)
    np.testing.assert_allclose(got, p, rtol=0, atol=atol)
    export_onnx(loaded, tmp_path / "m.onnx", opset=18)
    p_onnx = load_onnx(tmp_path / "m.onnx").predict_proba(images, batch_size=4)
    diff = parity(p, p_onnx, 0.5)
    assert diff["max_abs_diff"] < 1e-5 and diff["label_flips"] == 0
    return loaded


def test_ensemble_checkpoint_round_trip_and_onnx_parity(trained, tmp_path):
    _, _, pair, _ = trained
    loaded = check_round_trip_and_onnx(pair, tmp_path)
    assert loaded.config.members == 2 and isinstance(loaded.model, Ensemble)


def test_grad_cam_of_an_ensemble_averages_every_members_map(trained):
    _, _, pair, _ = trained
    assert len(cam_layers(pair.model)) == 2
    images = make_images(np.array([0, 1, 1]), np.random.default_rng(3))
    maps = gradcam(pair, images)
    assert maps.shape == (3, 28, 28) and maps.min() >= 0 and maps.max() <= 1
    cfg = pair.config.member()
    alone = [
        gradcam(Classifier(m, cfg, ImageTransform(size=28), {}), images) for m in pair.model.members
    ]
    assert not np.allclose(maps, alone[0]) and not np.allclose(maps, alone[1])
