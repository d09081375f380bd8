"""The app's Grad-CAM scale: `raw_gradcam` keeps the maps' size between images, and
`gradcam` (the explain stage's and `predict --cam`'s) is each raw map over its own peak."""

import numpy as np
import pytest
import torch

from pneumogan.classify.checkpoint import Classifier
from pneumogan.classify.nets import ClassifierConfig, build
from pneumogan.core.transforms import ImageTransform
from pneumogan.evaluate.explain import gradcam, raw_gradcam
from tests.conftest import make_images


def test_gradcam_is_the_raw_map_over_its_own_peak():
    torch.manual_seed(0)
    cfg = ClassifierConfig("resnet_small", 28, 4)
    clf = Classifier(build(cfg).eval(), cfg, ImageTransform(size=28), {})
    x = make_images(np.array([0, 1, 1]), np.random.default_rng(0))
    raw = raw_gradcam(clf, x)
    assert raw.shape == (3, 28, 28) and raw.dtype == np.float32 and raw.min() >= 0
    peaks = raw.max(axis=(1, 2))
    assert len(set(peaks.tolist())) > 1  # not each scaled to 1: they compare between images
    for r, m, peak in zip(raw, gradcam(clf, x), peaks, strict=True):
        np.testing.assert_allclose(m, r / peak if peak > 0 else r, rtol=1e-6)
    assert raw_gradcam(clf, x[:1]) == pytest.approx(raw[:1], rel=1e-5, abs=1e-12)
