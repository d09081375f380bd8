"""The project's one npz format (and MedMNIST's raw one), validated on every read.

`images` uint8 N×H×W (H == W), `labels` int64 N with 0 normal, 1 pneumonia. Arrays are
written uncompressed with fixed zip metadata, so equal arrays give byte-equal files.

Every rejection names the file (and split), what is wrong, and ends with what to change.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from pneumogan.core.choices import LABELS, SIZES
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
            return {key: _array(npz, key, path) for key in npz.files}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(
            f"{path}: not a readable npz ({type(err).__name__}). The file is truncated, "
            "corrupt or not an npz: replace it (for a pipeline output: delete it and run "
            "dvc repro)."
        ) from None


def _array(npz, key: str, path: Path) -> np.ndarray:
    """One array of an open npz; a pickled (object) array is refused by name."""
    try:
        return npz[key]
    except ValueError as err:
        if "allow_pickle" not in str(err):
            raise
        raise DataError(
            f"{path}: array {key!r} is a pickled object array, which is never loaded (unpickling "
            f"can run code). {_plain_fix(key)}"
        ) from None


def _plain_fix(key: str) -> str:
    """How to save the array `key` without pickling, from what the key holds."""
    if key == "source_index":
        return "Save it as a plain integer array: np.array(values, dtype=np.int64)"
    if key.endswith(("_patients", "_files")) or key.startswith("source_"):  # ids and paths
        return "Save it as a plain string array: np.array(values, dtype=str)"
    return (
        "Save it as a plain numeric array: images one uint8 N x H x W array (np.stack the "
        "images, all of one size), labels integers 0 and 1"
    )


def _image_dtype_fix(images: np.ndarray) -> str:
    """How to turn images of another dtype into uint8 0..255, from the values they hold."""
    kind = images.dtype.kind
    if kind in "iuf" and images.size:
        lo, hi = float(np.nanmin(images)), float(np.nanmax(images))
        held = f"they hold {lo:g}..{hi:g}: save"
        if kind == "f" and lo >= 0.0 and hi <= 1.0:
            return f"{held} np.round(images * 255).astype(np.uint8)"
        if lo >= 0.0 and hi <= 255.0:
            return f"{held} {'np.round(images)' if kind == 'f' else 'images'}.astype(np.uint8)"
        if images.dtype == np.uint16:
            return f"{held} (images // 257).astype(np.uint8), or scale from the range they use"
    return "scale them to 0 (black) .. 255 (white) and save them with .astype(np.uint8)"


def _image_shape_fix(shape: tuple) -> str:
    if len(shape) == 4 and shape[-1] in (1, 3, 4):
        return "keep one grayscale channel (images[..., 0], or a luma conversion for colour)"
    if len(shape) == 4 and shape[1] in (1, 3, 4):
        return "keep one grayscale channel (images[:, 0], or a luma conversion for colour)"
    if len(shape) == 2:
        return "stack the images on a first axis (one image: images[None])"
    if len(shape) == 3:
        return "make every image square (crop or pad it) and of one size before stacking"
    return "store one grayscale image per row: N x H x W with H == W"


def validate_split(
    images: np.ndarray,
    labels: np.ndarray,
    where: str,
    *,
    size: int | None = None,
    need_both_classes: bool = True,
) -> None:
    """Check one split against the data contract; raise DataError naming what is wrong and
    ending with what to change in the file."""
    if images.dtype != np.uint8:
        raise DataError(
            f"{where}: images have dtype {images.dtype}, expected uint8 (0 black .. 255 white); "
            + _image_dtype_fix(images)
        )
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise DataError(
            f"{where}: images have shape {images.shape}, expected N x H x W, H == W; "
            + _image_shape_fix(images.shape)
        )
    if size is not None and images.shape[1] != size:
        other = f", or set data.image_size to {images.shape[1]}" if images.shape[1] in SIZES else ""
        raise DataError(
            f"{where}: images are {images.shape[1]} px, expected {size} px (data.image_size); "
            f"resize them to {size} x {size} px{other}"
        )
    n = images.shape[0]
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind in "fb" and np.isin(labels, (0, 1)).all():
            fix = "they hold only 0 and 1: save labels.astype(np.int64)"
        else:
            fix = "save 0 for normal and 1 for pneumonia, as integers (np.int64)"
        raise DataError(f"{where}: labels have dtype {labels.dtype}, expected integers; {fix}")
    if labels.shape != (n,):
        if labels.size == n:
            fix = "flatten them (labels.reshape(-1))"
        else:
            fix = f"give each image one label, in the images' order ({n} labels, not {labels.size})"
        raise DataError(
            f"{where}: {labels.shape} labels for {n} images; expected one per image: {fix}"
        )
    if need_both_classes and n == 0:
        raise DataError(
            f"{where}: no images; add images of both classes, normal (0) and pneumonia (1)"
        )
    bad = np.setdiff1d(np.unique(labels), list(LABELS))
    if bad.size:
        raise DataError(
            f"{where}: label values {bad.tolist()} outside {{0, 1}}; relabel the images 0 "
            "(normal) and 1 (pneumonia), and drop those of any other class"
        )
    if need_both_classes and np.unique(labels).size < 2:
        (held,) = np.unique(labels)
        lack = 1 - int(held)
        raise DataError(
            f"{where}: {n} images of class {LABELS[int(held)]} ({int(held)}) only; both normal "
            f"(0) and pneumonia (1) are needed: add {LABELS[lack]} ({lack}) images to it"
        )


SOURCE_KEYS = ("source_split", "source_index", "source_file")  # where an image came from


def save_split(
    path: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    sources: dict[str, np.ndarray] | None = None,
) -> None:
    """Write one split in the project's format: images uint8 N×H×W, labels int64 N, and for a
    class-weighted training set `weights` float32 N (each image's weight in the loss).

    `sources` says where each image sits in the raw file: `source_split` (the raw file's
    split), `source_index` (its position there) and, for a folder source, `source_file` (its
    path relative to data.path).
    """
    arrays = {"images": images.astype(np.uint8), "labels": labels.astype(np.int64)}
    if weights is not None:
        arrays["weights"] = weights.astype(np.float32)
    for key, values in (sources or {}).items():
        if key not in SOURCE_KEYS or len(values) != len(labels):
            raise ValueError(f"source array {key!r}: one of {SOURCE_KEYS}, one value per image")
        arrays[key] = values.astype(np.int64 if key == "source_index" else str)
    write_arrays(path, **arrays)


def load_sources(path: str | Path) -> dict[str, np.ndarray]:
    """Where each image of a split sits in the raw file (see `save_split`); {} when unrecorded."""
    arrays = read_arrays(path)
    return {k: arrays[k] for k in SOURCE_KEYS if k in arrays}


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
