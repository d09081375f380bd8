"""Classifier networks, built by name from a registry: a compact ResNet for 28 px, or torchvision's.

Every network maps N×1×H×W (pixels mapped to [-1, 1]) to one logit per image and has
`features(x)`, the pooled penultimate layer (the reference network's features measure the GAN).

Each network starts with an `InputAdapter`, so what it does to its input travels with it (into
the checkpoint, the ONNX graph, Grad-CAM and serving): an optional bilinear resize to
`input_size`, and for the ImageNet backbones (DenseNet121, ResNet50, VGG16) the grayscale
repeated to three channels and normalised by ImageNet's mean and std, as their weights expect.
Those three can start from torchvision's ImageNet weights (`pretrained`), fetched through its
weights API: torch.hub's cache first (`$TORCH_HOME/hub/checkpoints/`, by default
`~/.cache/torch/hub/checkpoints/`), then download.pytorch.org. `freeze` trains the new head
only, the backbone kept as it was loaded (batch-norm statistics included).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.error import URLError

import torch
import torchvision
from torch import nn
from torch.hub import get_dir
from torch.nn import functional as F
from torchvision.models import get_model_weights

from pneumogan.core.errors import DataError
from pneumogan.core.registry import CLASSIFIERS

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the statistics torchvision's ImageNet weights expect
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_BACKBONE_INPUT = 32  # five stride-2 steps: a smaller input has no pixels left
SMALL_INPUT = 64  # ResNet-18/34 below this side get the small-input (CIFAR) stem


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything needed to rebuild the network; saved inside the checkpoint."""

    arch: str
    size: int  # side of the images it is given
    width: int  # resnet_small's first stage (the others have their own widths)
    input_size: int | None = None  # side the adapter resizes to; None keeps `size`
    channels: int = 1  # the adapter repeats the grayscale to this many channels
    mean: tuple[float, ...] | None = None  # per channel, on pixels scaled to 0..1; None: [-1, 1]
    std: tuple[float, ...] | None = None
    pretrained: bool = False  # started from ImageNet weights
    freeze: bool = False  # only the head was trained
    members: int = 1  # > 1: an ensemble of that many such networks, P(pneumonia) averaged
    tta_shift: float = 0.0  # > 0: P(pneumonia) averaged over the image and 4 shifts of this (px)

    @classmethod
    def for_arch(
        cls,
        arch: str,
        size: int,
        width: int,
        input_size: int | None = None,
        pretrained: bool = False,
        freeze: bool = False,
        members: int = 1,
        tta_shift: float = 0.0,
    ) -> ClassifierConfig:
        """The config of `arch`, with the channels and normalisation it needs."""
        if "backbone" in CLASSIFIERS.get(arch).tags:
            return cls(
                arch,
                size,
                width,
                input_size,
                3,
                IMAGENET_MEAN,
                IMAGENET_STD,
                pretrained,
                freeze,
                members,
                tta_shift,
            )
        if pretrained or freeze:
            backbones = list(CLASSIFIERS.names("backbone"))
            raise ValueError(f"{arch} has no pretrained weights; those are {backbones}")
        return cls(arch, size, width, input_size, members=members, tta_shift=tta_shift)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ClassifierConfig:
        raw = dict(raw)
        for key in ("mean", "std"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        return cls(**raw)

    def member(self) -> ClassifierConfig:
        """The config of one trained network: no ensemble, no test-time augmentation."""
        return replace(self, members=1, tta_shift=0.0)

    def body(self) -> ClassifierConfig:
        """The config without test-time augmentation (what is trained: the ensemble, if any)."""
        return replace(self, tta_shift=0.0)

    @property
    def side(self) -> int:
        """The side the network body sees, after the adapter."""
        return self.input_size or self.size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class InputAdapter(nn.Module):
    """Resize, repeat to `channels` and normalise, as the config says; identity for resnet_small."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.side = cfg.side if cfg.side != cfg.size else None
        self.channels = cfg.channels
        self.normalise = cfg.mean is not None
        if self.normalise:
            # x in [-1, 1] -> (x + 1) / 2 in [0, 1] -> (· - mean) / std, folded into one affine map
            mean, std = torch.tensor(cfg.mean), torch.tensor(cfg.std)
            self.register_buffer("scale", (0.5 / std).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("shift", ((0.5 - mean) / std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.side is not None:
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)
        if self.channels != x.shape[1]:
            x = x.expand(-1, self.channels, -1, -1)
        if self.normalise:
            x = x * self.scale + self.shift
        return x


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (He et al., 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem + three residual stages (width, 2·width, 4·width), strides 1, 2, 2; one logit out."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        width = cfg.width
        self.adapter = InputAdapter(cfg)
        # Larger images get a strided stem so the feature maps stay about 28 px.
        stem_stride = max(1, cfg.side // 28)
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1),
            BasicBlock(width, 2 * width, 2),
            BasicBlock(2 * width, 4 * width, 2),
        )
        self.head = nn.Linear(4 * width, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate layer (4·width numbers per image)."""
        x = self.stem(self.adapter(x))
        return torch.flatten(F.adaptive_avg_pool2d(self.stages(x), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).view(-1)


class TorchvisionResNet(nn.Module):
    """torchvision's ResNet-18/34 from scratch, with a one-channel stem and one logit.

    Below `SMALL_INPUT` px the stem is CIFAR's (a 3×3 stride-1 convolution, no max-pool), as in
    MedMNIST's baselines: ImageNet's stem (7×7 stride 2, then a max-pool) would shrink a 28 px
    image to 7×7 before the first residual block.
    """

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.adapter = InputAdapter(cfg)
        net = getattr(torchvision.models, cfg.arch)(weights=None, num_classes=1)
        if cfg.side < SMALL_INPUT:
            net.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        else:
            net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(self.adapter(x)))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return torch.flatten(n.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.fc(self.features(x)).view(-1)


_DENSENET_OLD = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's default ImageNet weights of `arch`, from torch.hub's cache or the web."""
    weights = get_model_weights(arch).DEFAULT
    cached = Path(get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        state = weights.get_state_dict(progress=True, check_hash=True)
        # DenseNet's published file names its layers `norm.1`, `conv.2`, ...; the modules are
        # `norm1`, `conv2` (the renaming torchvision's own loader does).
        return {_DENSENET_OLD.sub(r"\1\2", k): v for k, v in state.items()}
    except (URLError, OSError, RuntimeError) as err:
        raise DataError(
            f"ImageNet weights of {arch} not found at {cached} and not downloadable "
            f"({type(err).__name__}: {err}). Download {weights.url} on a machine with internet "
            f"and put it at that path (the folder is $TORCH_HOME/hub/checkpoints), or set "
            "train.pretrained: false"
        ) from None


class Backbone(nn.Module):
    """torchvision's DenseNet121, ResNet50 or VGG16 with one logit on its pooled features.

    VGG16's fully connected layers are dropped (global average pooling of its last
    convolutional block, 512 numbers, feeds the head), as when it is used as a feature
    extractor; DenseNet121 gives 1024 numbers, ResNet50 2048.
    """

    FEATURES: ClassVar[dict[str, int]] = {"densenet121": 1024, "resnet50": 2048, "vgg16": 512}

    def __init__(self, cfg: ClassifierConfig, fetch_weights: bool = False) -> None:
        super().__init__()
        if cfg.side < MIN_BACKBONE_INPUT:
            raise DataError(
                f"{cfg.arch} needs images of at least {MIN_BACKBONE_INPUT} px and would see "
                f"{cfg.side} px: set train.input_size (64, say) to upsample them"
            )
        self.adapter = InputAdapter(cfg)
        self.arch, self.frozen = cfg.arch, cfg.freeze
        net = getattr(torchvision.models, cfg.arch)(weights=None)
        old_head = "fc" if cfg.arch == "resnet50" else "classifier"
        setattr(net, old_head, nn.Identity())  # ImageNet's 1000 classes: replaced by `head`
        if cfg.pretrained and fetch_weights:  # a checkpoint brings its own weights instead
            state = imagenet_state(cfg.arch)
            net.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] != old_head})
        self.net = net
        if self.frozen:
            self.net.requires_grad_(False)
        self.head = nn.Linear(self.FEATURES[cfg.arch], 1)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if self.frozen:  # a feature extractor keeps its batch-norm statistics
            self.net.eval()
        return self

    def last_block(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional block's feature maps (what Grad-CAM reads)."""
        n = self.net
        if self.arch == "resnet50":
            return n.layer4(n.layer3(n.layer2(n.layer1(n.maxpool(n.relu(n.bn1(n.conv1(x))))))))
        return n.features(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last_block(self.adapter(x))
        if self.arch == "densenet121":  # torchvision's DenseNet applies a ReLU before pooling
            x = F.relu(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).view(-1)


def mean_probability_logit(z: torch.Tensor) -> torch.Tensor:
    """The logit of the mean of sigmoid(z) over dim 0, in log space (logsumexp of
    log-sigmoids), so it stays exact for confident logits where sigmoid rounds to 0 or 1."""
    return torch.logsumexp(F.logsigmoid(z), 0) - torch.logsumexp(F.logsigmoid(-z), 0)


class Ensemble(nn.Module):
    """Networks trained from different seeds; the logit of their mean P(pneumonia).

    Averaging probabilities, not logits, keeps one overconfident member from deciding alone.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The members' pooled features side by side."""
        return torch.cat([m.features(x) for m in self.members], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.stack([m(x) for m in self.members])
        return mean_probability_logit(z)


def translate(x: torch.Tensor, px: float, dim: int) -> torch.Tensor:
    """`x` moved by `px` pixels along `dim`: out[i] = x[i + px], linear between pixels, edges
    repeated (what `grid_sample` does with a translation, `padding_mode="border"`)."""
    whole = math.floor(px)
    frac = px - whole
    n = x.shape[dim]
    idx = torch.arange(n, device=x.device)

    def take(k: int) -> torch.Tensor:
        return x.index_select(dim, (idx + k).clamp(0, n - 1))

    moved = take(whole)
    return moved if frac == 0 else moved * (1 - frac) + take(whole + 1) * frac


class ShiftTTA(nn.Module):
    """Test-time augmentation: the logit of the mean P(pneumonia) over the image and its four
    shifts by `shift` px (left, right, up, down), all five in one batch through `net`.

    It has no weights of its own and is added after training (the network trains on single
    images); Grad-CAM and `features` use the unshifted image.
    """

    def __init__(self, net: nn.Module, shift: float) -> None:
        super().__init__()
        self.net = net
        self.shift = float(shift)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shift
        views = [x] + [translate(x, d, dim) for dim in (3, 2) for d in (s, -s)]
        z = self.net(torch.cat(views)).view(len(views), -1)
        return mean_probability_logit(z)


# The networks `train.arch` names. Adding one is one decorated function here: it takes the
# config and whether to fetch pretrained weights, and returns the network (one logit per image,
# with `features(x)`); params, the docs and `build` read their names from CLASSIFIERS.
@CLASSIFIERS.register(title="compact residual CNN for 28 px (three stages, strided stem above 28)")
def resnet_small(cfg: ClassifierConfig, fetch_weights: bool = False) -> nn.Module:
    return SmallResNet(cfg)


@CLASSIFIERS.register(title="ResNet-18 (torchvision), small-input stem below 64 px")
def resnet18(cfg: ClassifierConfig, fetch_weights: bool = False) -> nn.Module:
    return TorchvisionResNet(cfg)


@CLASSIFIERS.register(title="ResNet-34 (torchvision), small-input stem below 64 px")
def resnet34(cfg: ClassifierConfig, fetch_weights: bool = False) -> nn.Module:
    return TorchvisionResNet(cfg)


@CLASSIFIERS.register(title="DenseNet-121 (torchvision, ImageNet weights)", tags=("backbone",))
def densenet121(cfg: ClassifierConfig, fetch_weights: bool = False) -> nn.Module:
    return Backbone(cfg, fetch_weights)


@CLASSIFIERS.register(title="ResNet-50 (torchvision, ImageNet weights)", tags=("backbone",))
def resnet50(cfg: ClassifierConfig, fetch_weights: bool = False) -> nn.Module:
    return Backbone(cfg, fetch_weights)


@CLASSIFIERS.register(title="VGG-16 (torchvision, ImageNet weights)", tags=("backbone",))
def vgg16(cfg: ClassifierConfig, fetch_weights: bool = False) -> nn.Module:
    return Backbone(cfg, fetch_weights)


def build(cfg: ClassifierConfig, *, fetch_weights: bool = False) -> nn.Module:
    """The network named by `cfg.arch`; an unknown name lists the known ones.

    `fetch_weights` loads the ImageNet weights of a `pretrained` backbone (to train it);
    without it the network is left as initialised, for a checkpoint's weights to fill.
    """
    builder = CLASSIFIERS.get(cfg.arch).build
    if cfg.tta_shift:
        return ShiftTTA(build(cfg.body(), fetch_weights=fetch_weights), cfg.tta_shift)
    if cfg.members > 1:
        return Ensemble(
            [build(cfg.member(), fetch_weights=fetch_weights) for _ in range(cfg.members)]
        )
    return builder(cfg, fetch_weights)
