"""ImageNet backbones: input adapter, offline ImageNet weights from torch.hub's cache, freeze."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pneumogan.classify.checkpoint import load_classifier, save_classifier
from pneumogan.classify.nets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    ClassifierConfig,
    InputAdapter,
    build,
)
from pneumogan.classify.predictor import predict_proba
from pneumogan.classify.train import train_classifier
from pneumogan.core.errors import DataError
from pneumogan.core.registry import CLASSIFIERS
from tests.conftest import make_images
from tests.unit.test_classifier import SETTINGS, settings

BACKBONES = CLASSIFIERS.names("backbone")  # the ImageNet backbones, as registered

# one short epoch, no augmentation or mixup: only the weights' movement is looked at
ONE_EPOCH = settings(SETTINGS, epochs=1, lr=0.01, patience=1, max_shift=0.0, max_rotate=0.0)


def fit_one_epoch(cfg):
    return train_classifier(
        tiny(),
        tiny(seed=1),
        cfg,
        ONE_EPOCH,
        rng=np.random.default_rng(0),
        device=torch.device("cpu"),
    )[0]


def tiny(n=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.r_[np.zeros(n // 2), np.ones(n - n // 2)].astype(np.int64))
    return make_images(labels, rng), labels


def test_adapter_resizes_repeats_and_normalises():
    cfg = ClassifierConfig.for_arch("densenet121", 28, 4, input_size=56)
    assert cfg.channels == 3 and cfg.mean == IMAGENET_MEAN and cfg.std == IMAGENET_STD
    x = torch.full((2, 1, 28, 28), 1.0)  # pixel 255
    out = InputAdapter(cfg)(x)
    assert out.shape == (2, 3, 56, 56)
    want = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[0, :, 5, 5], want)
    small = ClassifierConfig.for_arch("resnet_small", 28, 4)  # identity: [-1, 1], one channel
    assert small.channels == 1 and small.mean is None
    assert torch.equal(InputAdapter(small)(x), x)


def test_config_rejects_weights_for_networks_without_them():
    with pytest.raises(ValueError, match="resnet_small has no pretrained weights"):
        ClassifierConfig.for_arch("resnet_small", 28, 4, pretrained=True)


def test_old_checkpoint_configs_still_load():
    cfg = ClassifierConfig.from_dict({"arch": "resnet_small", "size": 28, "width": 4})
    assert cfg.side == 28 and cfg.channels == 1 and not cfg.pretrained


@pytest.mark.parametrize("arch", BACKBONES)
def test_backbone_from_scratch_shapes_and_checkpoint_round_trip(arch, tmp_path):
    cfg = ClassifierConfig.for_arch(arch, 28, 4, input_size=32)
    model = build(cfg).eval()
    x = torch.zeros(2, 1, 28, 28)
    assert model(x).shape == (2,)
    assert model.features(x).shape == (2, Backbone.FEATURES[arch])
    from pneumogan.classify.checkpoint import Classifier
    from pneumogan.core.transforms import ImageTransform

    clf = Classifier(model, cfg, ImageTransform(28), {})
    save_classifier(tmp_path / "c.safetensors", clf)
    back = load_classifier(tmp_path / "c.safetensors")
    assert back.config == cfg  # channels, normalisation and input size travel with it
    images = tiny()[0][:3]
    np.testing.assert_array_equal(
        predict_proba(clf, images, batch_size=4), predict_proba(back, images, batch_size=4)
    )


def test_backbone_refuses_inputs_too_small_for_it():
    with pytest.raises(
        DataError, match=r"vgg16 needs images of at least 32 px .* train.input_size"
    ):
        build(ClassifierConfig.for_arch("vgg16", 28, 4))


# ---------------------------------------------------------------- ImageNet weights, offline


def body_state(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """Generated 'ImageNet' weights for `arch`: its body (no 1000-class head), random values."""
    import torchvision

    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None)
    setattr(net, "fc" if arch == "resnet50" else "classifier", nn.Identity())
    state = net.state_dict()
    if arch == "densenet121":  # as the published file: norm.1, conv.2, ...; no batch counts
        old = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))([12])\.(.*)$")
        state = {
            old.sub(r"\1.\2.\3", k): v
            for k, v in state.items()
            if not k.endswith("num_batches_tracked")
        }
    return state


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """$TORCH_HOME with generated weights where torchvision's weights API looks for them."""
    from torchvision.models import get_model_weights

    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    states = {}
    for arch in BACKBONES:
        url = get_model_weights(arch).DEFAULT.url
        (home / "hub/checkpoints").mkdir(parents=True, exist_ok=True)
        states[arch] = body_state(arch, seed=len(arch))
        torch.save(states[arch], home / "hub/checkpoints" / Path(url).name)
    return states


@pytest.mark.slow
@pytest.mark.parametrize("arch", BACKBONES)
def test_pretrained_weights_load_offline_and_freeze_trains_the_head_only(arch, torch_home):
    cfg = ClassifierConfig.for_arch(arch, 28, 4, input_size=32, pretrained=True, freeze=True)
    model = build(cfg, fetch_weights=True)
    loaded = model.net.state_dict()
    any_conv = next(k for k in loaded if k.endswith("weight") and loaded[k].ndim == 4)
    stored = next(v for k, v in torch_home[arch].items() if k.endswith(any_conv.split(".", 1)[-1]))
    assert torch.equal(loaded[any_conv], stored)  # the weights came from the cache file
    before = {k: v.clone() for k, v in model.state_dict().items()}
    after = fit_one_epoch(cfg).model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head.") for k in changed), sorted(changed)[:5]


def test_missing_weights_without_network_name_the_file_to_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(DataError) as err:
        build(ClassifierConfig.for_arch("resnet50", 28, 4, 32, pretrained=True), fetch_weights=True)
    msg = str(err.value)
    assert str(tmp_path / "empty/hub/checkpoints/resnet50-11ad3fa6.pth") in msg
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in msg


def test_unfrozen_backbone_trains_everything():
    cfg = ClassifierConfig.for_arch("resnet50", 28, 4, input_size=32)
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in build(cfg).state_dict().items()}
    torch.manual_seed(0)
    after = fit_one_epoch(cfg).model.state_dict()
    assert not torch.equal(before["net.conv1.weight"], after["net.conv1.weight"])
