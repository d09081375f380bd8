"""Grad-CAM maps and overlays: shape, range, determinism, and the CLI's --cam files."""

import numpy as np
import pytest
import torch
from PIL import Image

from pneumogan.classify.checkpoint import Classifier, save_classifier
from pneumogan.classify.nets import ClassifierConfig, build
from pneumogan.core.transforms import ImageTransform
from pneumogan.evaluate.explain import cam_layer, gradcam, overlay, pick_examples
from pneumogan.serve import cli
from tests.conftest import make_images


@pytest.fixture(scope="module")
def clf():
    torch.manual_seed(0)
    cfg = ClassifierConfig("resnet_small", 28, 4)
    return Classifier(build(cfg).eval(), cfg, ImageTransform(size=28), {})


def test_maps_have_the_image_size_and_lie_in_0_1(clf):
    x = make_images(np.array([0, 1, 1]), np.random.default_rng(0))
    maps = gradcam(clf, x)
    assert maps.shape == (3, 28, 28) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    for m in maps:  # each map is scaled to its own maximum (or is all zero)
        assert m.max() == pytest.approx(1.0) or m.max() == 0
    np.testing.assert_array_equal(maps, gradcam(clf, x))  # deterministic


def test_the_map_marks_where_the_evidence_is(clf):
    """A network whose logit is its mean activation: the map marks the bright corner only."""

    class Mean(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1, bias=False))
            torch.nn.init.ones_(self.stages[0].weight)

        def forward(self, x):
            return self.stages(x).mean((1, 2, 3))

    mean = Classifier(Mean(), clf.config, clf.transform, {})
    x = np.zeros((1, 28, 28), np.uint8)
    x[0, :7, :7] = 255  # the only positive activation
    m = gradcam(mean, x)[0]
    assert m[1:6, 1:6].min() > 0.9 and m[12:, 12:].max() == 0


def test_cam_layer_is_known_for_every_registered_network():
    for arch in ("resnet_small", "resnet18"):
        model = build(ClassifierConfig(arch, 28, 4))
        assert isinstance(cam_layer(model), torch.nn.Module)
    with pytest.raises(ValueError, match="no Grad-CAM layer known for Linear"):
        cam_layer(torch.nn.Linear(2, 1))


def test_overlay_is_rgb_enlarged_and_keeps_the_image_where_the_map_is_zero():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    out = overlay(image, np.zeros((4, 4), np.float32), scale=3, alpha=0.0)
    assert out.shape == (12, 12, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[::3, ::3, 0], image)
    hot = overlay(image, np.ones((4, 4), np.float32), scale=3)
    assert not np.array_equal(hot, out)


def test_predict_cam_writes_one_overlay_per_image(tmp_path, clf, capsys):
    save_classifier(tmp_path / "m.safetensors", clf)
    (tmp_path / "in" / "b").mkdir(parents=True)
    x = make_images(np.array([0, 1]), np.random.default_rng(1))
    Image.fromarray(x[0]).save(tmp_path / "in/a.png")
    Image.fromarray(x[1]).save(tmp_path / "in/b/a.png")  # the same name in another folder
    args = ["predict", str(tmp_path / "in"), "--model", str(tmp_path / "m.safetensors")]
    assert cli.run([*args, "--threshold", "0.5", "--cam", str(tmp_path / "cams")]) == 0
    names = sorted(p.name for p in (tmp_path / "cams").iterdir())
    assert names == ["a_1_cam.png", "a_cam.png"]
    assert Image.open(tmp_path / "cams" / names[0]).size == (224, 224)


def test_pick_examples_groups_right_and_wrong_calls_most_confident_first():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.4, 0.9, 0.95, 0.6, 0.2])
    g = pick_examples(y, p, 0.5, per_group=5)
    assert g["normal right"].tolist() == [0, 1]  # 0.1 is further from 0.5 than 0.4
    assert g["normal wrong"].tolist() == [2]
    assert g["pneumonia right"].tolist() == [3, 4]
    assert g["pneumonia wrong"].tolist() == [5]
    assert [len(v) for v in pick_examples(y, p, 0.5, per_group=1).values()] == [1, 1, 1, 1]
