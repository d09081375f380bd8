"""Grad-CAM heatmaps (captum) of the classifier's P(pneumonia), and overlays to look at.

The map comes from the last residual stage, a 7 × 7 grid at 28 px (4 px a cell), which
captum upsamples bilinearly to the image. On real test images it marks a region (for
confident pneumonia calls, the central chest); the stage before it (14 × 14) gave only a few
isolated hot pixels per image, not a usable map. Maps are ReLU'd (evidence for pneumonia
only) and scaled to 0..1 per image: they show where, not how much.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from pneumogan.predict import Classifier


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations the map is computed on, for each registered network."""
    if hasattr(model, "stages"):  # SmallResNet
        return model.stages[-1]
    if hasattr(model, "net") and hasattr(model.net, "layer4"):  # torchvision ResNets
        return model.net.layer4
    raise ValueError(f"no Grad-CAM layer known for {type(model).__name__}")


def gradcam(clf: Classifier, images: np.ndarray) -> np.ndarray:
    """N×H×W maps in [0, 1] of where the evidence for pneumonia is, one per uint8 image."""
    from captum.attr import LayerAttribution, LayerGradCam

    model = clf.model.eval()
    x = clf.transform.encode(images).requires_grad_(True)
    method = LayerGradCam(lambda t: model(t).unsqueeze(1), cam_layer(model))
    maps = method.attribute(x, target=0, relu_attributions=True)
    maps = LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    maps = maps.detach().clamp(min=0).squeeze(1)
    top = maps.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
    return (maps / top).cpu().numpy().astype(np.float32)


def overlay(image: np.ndarray, heat: np.ndarray, scale: int = 8, alpha: float = 0.45) -> np.ndarray:
    """The image (uint8 H×W) under its map in a colour scale, enlarged `scale` times, RGB."""
    from matplotlib import colormaps

    gray = np.repeat(image[..., None].astype(np.float32) / 255.0, 3, axis=2)
    colour = colormaps["inferno"](heat)[..., :3].astype(np.float32)
    mixed = (1 - alpha) * gray + alpha * colour
    big = np.kron(mixed, np.ones((scale, scale, 1), dtype=np.float32))  # nearest: no blur
    return np.clip(np.round(big * 255), 0, 255).astype(np.uint8)
