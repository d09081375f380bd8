"""The project's one npz format, validated on every read; outputs written whole or not at all."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

LABELS = {0: "normal", 1: "pneumonia"}
# A fixed timestamp inside npz archives, so equal arrays give byte-equal files (and DVC hashes).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class DataError(ValueError):
    """An input file is missing, unreadable or breaks the data contract."""


# What torch.load and load_state_dict raise on a missing, truncated or foreign checkpoint.
CHECKPOINT_ERRORS = (
    OSError,
    EOFError,
    RuntimeError,
    KeyError,
    TypeError,
    ValueError,
    pickle.UnpicklingError,
)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; outputs are ordinary readable files
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_arrays(path: str | Path, **arrays: np.ndarray) -> None:
    """Write arrays as an uncompressed npz with fixed zip metadata (byte-reproducible)."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Load every array of an npz, turning any failure into a DataError that names the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found. Run the stage that makes it (dvc repro).")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(
            f"{path}: not a readable npz ({type(err).__name__}: {err}). The file is truncated or "
            "corrupt: delete it and rerun the stage that makes it (dvc repro -f <stage>)."
        ) from None


def validate_split(
    images: np.ndarray,
    labels: np.ndarray,
    where: str,
    *,
    size: int | None = None,
    need_both_classes: bool = True,
) -> None:
    """Check one split against the data contract; raise DataError naming what is wrong."""
    if images.dtype != np.uint8:
        raise DataError(f"{where}: images have dtype {images.dtype}, expected uint8")
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise DataError(f"{where}: images have shape {images.shape}, expected N x H x W, H == W")
    if size is not None and images.shape[1] != size:
        raise DataError(
            f"{where}: images are {images.shape[1]} px, expected {size} px (params data.size)"
        )
    if labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels have dtype {labels.dtype}, expected integers")
    if labels.shape != (images.shape[0],):
        raise DataError(
            f"{where}: {labels.shape} labels for {images.shape[0]} images; expected one per image"
        )
    bad = np.setdiff1d(np.unique(labels), list(LABELS))
    if bad.size:
        raise DataError(f"{where}: label values {bad.tolist()} outside {{0, 1}}")
    if need_both_classes and np.unique(labels).size < 2:
        raise DataError(
            f"{where}: holds only class {np.unique(labels).tolist()} ({images.shape[0]} images); "
            "both normal (0) and pneumonia (1) are needed"
        )


def save_split(path: str | Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write one split in the project's format: images uint8 N×H×W, labels int64 N."""
    write_arrays(path, images=images.astype(np.uint8), labels=labels.astype(np.int64))


def load_split(
    path: str | Path, *, size: int | None = None, need_both_classes: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one split written by `save_split`."""
    arrays = read_arrays(path)
    missing = {"images", "labels"} - set(arrays)
    if missing:
        raise DataError(
            f"{path}: missing key(s) {sorted(missing)} (has {sorted(arrays)}); expected "
            "'images' and 'labels'. Rerun the stage that writes it."
        )
    images, labels = arrays["images"], arrays["labels"]
    validate_split(images, labels, str(path), size=size, need_both_classes=need_both_classes)
    return images, labels.astype(np.int64)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
