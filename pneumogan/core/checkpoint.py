"""Checkpoints as safetensors: weights plus a JSON description, bytes that depend on nothing else.

Loading runs no code (no pickle), and two saves of the same weights and description give
the same bytes, so an unchanged network leaves the stages downstream of it cached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pneumogan.core.errors import DataError
from pneumogan.core.files import write_bytes

if TYPE_CHECKING:
    import torch

META_KEY = "pneumogan"  # the safetensors metadata entry holding the JSON description


def save_checkpoint(
    path: str | Path, kind: str, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> None:
    """Write `tensors` and `meta` (JSON-able; `kind` names what the file holds)."""
    description = {META_KEY: json.dumps({"kind": kind, **meta}, sort_keys=True)}
    if not tensors:  # a stand-in: the same file format, without loading torch (seconds)
        from safetensors.numpy import save as save_arrays

        write_bytes(path, save_arrays({}, metadata=description))
        return
    from safetensors.torch import save  # loads torch: only for real weights

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    write_bytes(path, save(clean, metadata=description))


def load_checkpoint(
    path: str | Path, kind: str, producer: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and description of a `kind` checkpoint; a bad file names the stage to rerun."""
    from safetensors import SafetensorError, safe_open  # its torch reader loads torch

    path = Path(path)
    fix = f"rerun the {producer} stage (dvc repro -f {producer})"
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found; {fix}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[META_KEY])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (OSError, SafetensorError, KeyError, ValueError) as err:
        raise DataError(
            f"{path}: not a pneumogan checkpoint ({type(err).__name__}: {err}); {fix}"
        ) from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: not a pneumogan checkpoint (description is not an object); {fix}")
    if meta.get("kind") != kind:
        raise DataError(f"{path}: holds a {meta.get('kind')!r}, expected a {kind!r}; {fix}")
    return tensors, meta


def split_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix.`, with the prefix removed (one network of several)."""
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def with_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}
