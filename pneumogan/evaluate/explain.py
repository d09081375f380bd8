"""Grad-CAM heatmaps (captum) of the classifier's P(pneumonia), and overlays to look at.

The map comes from the last residual stage, a 7 × 7 grid at 28 px (4 px a cell), which
captum upsamples bilinearly to the image. On real test images it marks a region (for
confident pneumonia calls, the central chest); the stage before it (14 × 14) gave only a few
isolated hot pixels per image, not a usable map. Maps are ReLU'd (evidence for pneumonia
only) and scaled to 0..1 per image: they show where, not how much.
"""

from __future__ import annotations

import numpy as np
from captum.attr import LayerAttribution, LayerGradCam
from matplotlib import colormaps
from torch import nn

from pneumogan.classify.checkpoint import Classifier
from pneumogan.classify.nets import ShiftTTA
from pneumogan.classify.predictor import predict_proba
from pneumogan.core.choices import LABELS


def cam_layers(model: nn.Module) -> list[nn.Module]:
    """The layer of each network of an ensemble (the one layer of a single network)."""
    if hasattr(model, "members"):  # Ensemble
        return [cam_layer(m) for m in model.members]
    return [cam_layer(model)]


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations the map is computed on, for each registered network."""
    if hasattr(model, "stages"):  # SmallResNet
        return model.stages[-1]
    if hasattr(model, "net") and hasattr(model.net, "layer4"):  # torchvision ResNets
        return model.net.layer4
    if hasattr(model, "net") and hasattr(model.net, "features"):  # DenseNet121, VGG16
        return model.net.features
    raise ValueError(f"no Grad-CAM layer known for {type(model).__name__}")


def gradcam(clf: Classifier, images: np.ndarray) -> np.ndarray:
    """N×H×W maps in [0, 1] of where the evidence for pneumonia is, one per uint8 image."""
    maps = raw_gradcam(clf, images)
    top = np.maximum(maps.max(axis=(1, 2), initial=0), 1e-12)
    return (maps / top[:, None, None]).astype(np.float32)


def raw_gradcam(clf: Classifier, images: np.ndarray) -> np.ndarray:
    """The maps before `gradcam` scales each to its own maximum: N×H×W, at least 0, in units
    that compare between images of one model (the app draws them on one shared scale)."""
    model = clf.model.eval()
    if isinstance(model, ShiftTTA):  # the map of the image as given, not of its shifts
        model = model.net
    x = clf.transform.encode(images).requires_grad_(True)
    maps = 0
    for layer in cam_layers(model):  # an ensemble: the mean of the maps at each member's layer
        method = LayerGradCam(lambda t: model(t).unsqueeze(1), layer)
        layer_maps = method.attribute(x, target=0, relu_attributions=True)
        size = tuple(x.shape[-2:])
        maps = maps + LayerAttribution.interpolate(layer_maps, size, interpolate_mode="bilinear")
    return maps.detach().clamp(min=0).squeeze(1).cpu().numpy().astype(np.float32)


def overlay(image: np.ndarray, heat: np.ndarray, scale: int = 8, alpha: float = 0.45) -> np.ndarray:
    """The image (uint8 H×W) under its map in a colour scale, enlarged `scale` times, RGB."""
    gray = np.repeat(image[..., None].astype(np.float32) / 255.0, 3, axis=2)
    colour = colormaps["inferno"](heat)[..., :3].astype(np.float32)
    mixed = (1 - alpha) * gray + alpha * colour
    big = np.kron(mixed, np.ones((scale, scale, 1), dtype=np.float32))  # nearest: no blur
    return np.clip(np.round(big * 255), 0, 255).astype(np.uint8)


def pick_examples(
    y: np.ndarray, p: np.ndarray, threshold: float, per_group: int
) -> dict[str, np.ndarray]:
    """Indices of the most confident correct and incorrect calls of each true class.

    Groups are named '<true class> <right|wrong>'; within a group the calls furthest from the
    threshold come first.
    """
    called = (p >= threshold).astype(np.int64)
    margin = np.abs(p - threshold)
    groups = {}
    for label, name in LABELS.items():
        for verdict, mask in (("right", called == y), ("wrong", called != y)):
            idx = np.flatnonzero((y == label) & mask)
            groups[f"{name} {verdict}"] = idx[np.argsort(-margin[idx], kind="stable")][:per_group]
    return groups


def explain_examples(
    clf: Classifier, images: np.ndarray, labels: np.ndarray, threshold: float, per_group: int
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[int, np.ndarray]]:
    """(P(pneumonia) of every image, the picked groups, an overlay per picked image)."""
    p = predict_proba(clf, images, batch_size=256)
    groups = pick_examples(labels, p, threshold, per_group)
    chosen = np.unique(np.concatenate([np.asarray(g, dtype=np.int64) for g in groups.values()]))
    maps = gradcam(clf, images[chosen]) if chosen.size else np.zeros((0, *images.shape[1:]))
    overlays = {int(i): overlay(images[i], m, scale=4) for i, m in zip(chosen, maps, strict=True)}
    return p, groups, overlays
