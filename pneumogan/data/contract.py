"""The project's one npz format (and MedMNIST's raw one), validated on every read.

`images` uint8 N×H×W (H == W), `labels` int64 N with 0 normal, 1 pneumonia. Arrays are
written uncompressed with fixed zip metadata, so equal arrays give byte-equal files.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from pneumogan.core.choices import LABELS
from pneumogan.core.errors import DataError
from pneumogan.core.files import atomic_path

SPLITS = ("train", "val", "test")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamp inside the archive


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
            f"{path}: not a readable npz ({type(err).__name__}). The file is truncated, "
            "corrupt or not an npz: replace it (for a pipeline output: delete it and run "
            "dvc repro)."
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
            f"{where}: images are {images.shape[1]} px, expected {size} px (data.image_size)"
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
        held = ", ".join(f"{LABELS[int(c)]} ({int(c)})" for c in np.unique(labels)) or "none"
        raise DataError(
            f"{where}: {images.shape[0]} images of class {held} only; both normal (0) and "
            "pneumonia (1) are needed"
        )


def save_split(
    path: str | Path, images: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> None:
    """Write one split in the project's format: images uint8 N×H×W, labels int64 N, and for a
    class-weighted training set `weights` float32 N (each image's weight in the loss)."""
    arrays = {"images": images.astype(np.uint8), "labels": labels.astype(np.int64)}
    if weights is not None:
        arrays["weights"] = weights.astype(np.float32)
    write_arrays(path, **arrays)


def load_weights(path: str | Path) -> np.ndarray | None:
    """The per-image loss weights of a training set, or None when it has none (all equal)."""
    arrays = read_arrays(path)
    if "weights" not in arrays:
        return None
    w, n = arrays["weights"], arrays["labels"].shape[0]
    if w.shape != (n,) or w.dtype.kind != "f" or not np.isfinite(w).all() or (w <= 0).any():
        raise DataError(
            f"{path}: weights must be {n} positive finite floats, one per image; got "
            f"{w.dtype} {w.shape}. Rerun the stage that writes it (dvc repro -f fuse)."
        )
    return w


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


def validate_medmnist(path: Path, size: int | None) -> dict[str, int]:
    """Check a MedMNIST-format npz (train/val/test images and labels); return split sizes."""
    arrays = read_arrays(path)
    want = {f"{s}_{k}" for s in SPLITS for k in ("images", "labels")}
    missing = sorted(want - set(arrays))
    if missing:
        raise DataError(
            f"{path}: missing key(s) {missing}; a MedMNIST file has {sorted(want)}. "
            "Replace it with the official file."
        )
    sizes = {}
    for split in SPLITS:
        labels = arrays[f"{split}_labels"]
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        validate_split(arrays[f"{split}_images"], labels, f"{path} [{split}]", size=size)
        sizes[split] = int(labels.shape[0])
    return sizes
