"""Test-time augmentation (`train.tta_shift`): the shifts, the averaged output, training,
checkpoint, ONNX, Grad-CAM."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from pneumogan.classify.checkpoint import Classifier
from pneumogan.classify.nets import ClassifierConfig, Ensemble, ShiftTTA, build, translate
from pneumogan.classify.predictor import predict_proba
from pneumogan.core.transforms import ImageTransform
from pneumogan.evaluate.explain import gradcam
from tests.conftest import make_images
from tests.unit.test_classifier import run_training, tiny
from tests.unit.test_ensemble import check_round_trip_and_onnx


def grid_shift(x, dx, dy):
    """The reference: an affine translation by (dx, dy) px, bilinear, edges repeated."""
    h, w = x.shape[-2:]
    theta = torch.tensor([[1.0, 0.0, 2 * dx / w], [0.0, 1.0, 2 * dy / h]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


@pytest.mark.parametrize("px", [1.5, -1.5, 0.3, -0.7, 2.0, -3.0, 4.25, 0.0])
def test_translate_is_grid_samples_translation(px):
    x = torch.randn(3, 1, 28, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(translate(x, px, 3), grid_shift(x, px, 0), rtol=0, atol=1e-12)
    torch.testing.assert_close(translate(x, px, 2), grid_shift(x, 0, px), rtol=0, atol=1e-12)


def test_translate_moves_content_by_whole_pixels():
    x = torch.arange(6.0).view(1, 1, 1, 6)
    assert translate(x, 2, 3).flatten().tolist() == [2, 3, 4, 5, 5, 5]
    assert translate(x, -1, 3).flatten().tolist() == [0, 0, 1, 2, 3, 4]
    assert translate(x, 0.5, 3).flatten().tolist() == [0.5, 1.5, 2.5, 3.5, 4.5, 5]


def test_output_is_the_mean_probability_over_the_image_and_four_shifts():
    torch.manual_seed(0)
    net = build(ClassifierConfig("resnet_small", 28, 4)).eval()
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        views = [x] + [
            grid_shift(x, dx, dy) for dx, dy in ((1.5, 0), (-1.5, 0), (0, 1.5), (0, -1.5))
        ]
        expected = torch.stack([torch.sigmoid(net(v)) for v in views]).mean(0)
        got = torch.sigmoid(ShiftTTA(net, 1.5)(x))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # not the plain network's output: the shifts change it
    assert not torch.allclose(got, torch.sigmoid(net(x)), atol=1e-4)


def test_config_builds_the_wrapper_around_the_trained_body():
    cfg = ClassifierConfig("resnet_small", 28, 4, tta_shift=1.5)
    model = build(cfg)
    assert isinstance(model, ShiftTTA) and model.shift == 1.5
    assert cfg.body() == ClassifierConfig("resnet_small", 28, 4)
    # with an ensemble, the wrapper is outside it and the members have neither
    both = build(ClassifierConfig("resnet_small", 28, 4, members=2, tta_shift=1.0))
    assert isinstance(both, ShiftTTA) and isinstance(both.net, Ensemble)
    assert ClassifierConfig("resnet_small", 28, 4, members=2, tta_shift=1.0).member() == (
        ClassifierConfig("resnet_small", 28, 4)
    )
    x = torch.zeros(3, 1, 28, 28)
    assert model(x).shape == (3,) and both(x).shape == (3,)
    assert model.features(x).shape == (3, 16)
    # off: the plain network, its weights named as before
    plain = build(ClassifierConfig("resnet_small", 28, 4))
    assert not isinstance(plain, ShiftTTA)
    assert {f"net.{k}" for k in plain.state_dict()} == set(model.state_dict())


@pytest.fixture(scope="module")
def trained():
    single, s1 = run_training()
    clf, summary = run_training(net=ClassifierConfig("resnet_small", 28, 4, tta_shift=1.5))
    return single, s1, clf, summary


def test_training_is_unchanged_and_the_wrapper_comes_after(trained):
    single, s1, clf, summary = trained
    assert isinstance(clf.model, ShiftTTA) and clf.config.tta_shift == 1.5
    for k, v in single.model.state_dict().items():  # the same network, trained the same way
        assert torch.equal(v, clf.model.net.state_dict()[k]), k
    assert {k: summary[k] for k in s1} == s1
    x, y = tiny(4, 6, seed=1)
    assert summary["tta_val_auc"] == pytest.approx(
        roc_auc_score(y, predict_proba(clf, x, batch_size=8))
    )
    assert clf.info == summary and not clf.model.training


def test_checkpoint_round_trip_and_onnx_parity(trained, tmp_path):
    _, _, clf, _ = trained
    # the trained weights sit channels-last, the loaded ones not: float32 rounding apart
    loaded = check_round_trip_and_onnx(clf, tmp_path, atol=1e-6, batch=5)
    assert loaded.config.tta_shift == 1.5 and isinstance(loaded.model, ShiftTTA)


def test_grad_cam_is_the_map_of_the_image_as_given(trained):
    _, _, clf, _ = trained
    images = make_images(np.array([0, 1, 1]), np.random.default_rng(3))
    plain = Classifier(clf.model.net, clf.config.body(), ImageTransform(size=28), {})
    np.testing.assert_array_equal(gradcam(clf, images), gradcam(plain, images))
