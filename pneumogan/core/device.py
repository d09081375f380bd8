"""Device choice: `auto` is CUDA, then MPS, then CPU; a named device that is missing is an error."""

from __future__ import annotations

import torch

from pneumogan.core.errors import ParamsError


def pick_device(name: str, key: str = "device") -> torch.device:
    """The torch device for param `key` = `name`; a missing named device fails cleanly."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available()}
    available["mps"] = torch.backends.mps.is_available()
    if not available.get(name, False):
        raise ParamsError(f"{key} = {name!r}: not available on this machine; use 'auto' or 'cpu'")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """What the numbers were computed on: the GPU's name, or the device type."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
