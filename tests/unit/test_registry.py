"""Registries fill themselves from decorated functions; the ResNet stems follow the input size."""

import pytest
import torch
from torch import nn

from pneumogan.classify.nets import ClassifierConfig, SmallResNet, build
from pneumogan.core.registry import CLASSIFIERS, GENERATORS, Registry
from pneumogan.generate.nets import GanConfig, build_generator


def test_the_registries_list_what_the_modules_register():
    assert CLASSIFIERS.names() == (
        "resnet_small",
        "resnet18",
        "resnet34",
        "densenet121",
        "resnet50",
        "vgg16",
    )
    assert CLASSIFIERS.names("backbone") == ("densenet121", "resnet50", "vgg16")
    assert GENERATORS.names() == (
        "dcgan",
        "sn_hinge",
        "resnet_sn",
        "cgan",
        "progan",
        "ddpm",
        "cddpm",
    )
    assert GENERATORS.names("adversarial") == ("dcgan", "sn_hinge", "resnet_sn", "cgan", "progan")
    assert GENERATORS.names("hinge") == ("sn_hinge", "resnet_sn", "cgan")
    assert GENERATORS.names("conditional") == ("cgan", "progan", "cddpm")
    assert all(entry.title for entry in [*CLASSIFIERS, *GENERATORS])


def test_an_unknown_name_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"train.arch must be one of \['resnet_small', "):
        build(ClassifierConfig("resnet_tiny", 28, 4))
    with pytest.raises(ValueError, match=r"gan.variant must be one of \['dcgan', "):
        build_generator(GanConfig(28, 8, 4, "stylegan"))


def test_an_empty_registry_says_what_to_import():
    empty = Registry("widget", "x.widget", "pneumogan.widgets")
    with pytest.raises(RuntimeError, match=r"import pneumogan\.widgets first"):
        empty.names()


def test_a_name_registers_once():
    reg = Registry("widget", "x.widget", "pneumogan.widgets")
    reg.register(title="a widget")(lambda cfg: cfg)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("<lambda>", title="again")(lambda cfg: cfg)


def test_adding_a_network_is_one_decorated_function():
    """What docs/extending.md shows: register a builder, and build() finds it by name."""

    @CLASSIFIERS.register(title="a test network")
    def tiny_test_net(cfg: ClassifierConfig, fetch_weights: bool = False) -> nn.Module:
        return SmallResNet(cfg)

    try:
        assert "tiny_test_net" in CLASSIFIERS.names()
        net = build(ClassifierConfig("tiny_test_net", 28, 4))
        assert net(torch.zeros(2, 1, 28, 28)).shape == (2,)
    finally:
        CLASSIFIERS._entries.pop("tiny_test_net")


def resnet_block_shapes(side: int) -> list[tuple[int, ...]]:
    """Feature-map sides after the stem and after each of the four residual stages."""
    net = build(ClassifierConfig.for_arch("resnet18", side, 4)).net
    x = torch.zeros(1, 1, side, side)
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    shapes = [tuple(x.shape[2:])]
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = layer(x)
        shapes.append(tuple(x.shape[2:]))
    return shapes


def test_resnet18_below_64_px_keeps_the_image_through_the_stem():
    """CIFAR's stem at 28 px: 3x3 stride 1, no max-pool, so the first block sees 28x28."""
    assert resnet_block_shapes(28) == [(28, 28), (28, 28), (14, 14), (7, 7), (4, 4)]
    net = build(ClassifierConfig.for_arch("resnet18", 28, 4)).net
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity)


def test_resnet18_from_64_px_uses_imagenets_stem():
    assert resnet_block_shapes(64) == [(16, 16), (16, 16), (8, 8), (4, 4), (2, 2)]
    net = build(ClassifierConfig.for_arch("resnet18", 64, 4)).net
    assert net.conv1.kernel_size == (7, 7) and net.conv1.stride == (2, 2)


def test_the_stem_follows_the_side_the_network_sees():
    """28 px images upsampled to 64 by `input_size` get the ImageNet stem."""
    net = build(ClassifierConfig.for_arch("resnet18", 28, 4, input_size=64)).net
    assert net.conv1.kernel_size == (7, 7)
