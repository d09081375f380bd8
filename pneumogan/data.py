"""Fetching PneumoniaMNIST (official download or a local copy) and splitting it canonically."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from medmnist import INFO

from pneumogan.io import DataError, read_arrays, validate_split

log = logging.getLogger(__name__)

FLAG = "pneumoniamnist"
SPLITS = ("train", "val", "test")
DATA_DIR_ENV = "PNEUMOGAN_DATA_DIR"
MEDMNIST_CACHE = Path("~/.medmnist").expanduser()


def official(size: int) -> dict:
    """URL, MD5, file name and split sizes of the official file at `size` px (medmnist.INFO)."""
    info = INFO[FLAG]
    suffix = "" if size == 28 else f"_{size}"
    return {
        "url": info[f"url{suffix}"],
        "md5": info[f"MD5{suffix}"],
        "filename": f"{FLAG}{suffix}.npz",
        "n_samples": dict(info["n_samples"]),
    }


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def candidate_dirs() -> list[Path]:
    """Where a local copy is looked for, in order: $PNEUMOGAN_DATA_DIR, then medmnist's cache."""
    dirs = []
    if os.environ.get(DATA_DIR_ENV):
        dirs.append(Path(os.environ[DATA_DIR_ENV]).expanduser())
    dirs.append(MEDMNIST_CACHE)
    return dirs


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


@dataclass(frozen=True)
class Provenance:
    source: str
    path: str
    md5: str
    sha256: str
    official_md5: str
    official: bool
    n_samples: dict


def _accept(path: Path, size: int, source: str) -> Provenance:
    spec = official(size)
    md5 = file_digest(path, "md5")
    sizes = validate_medmnist(path, size)
    is_official = md5 == spec["md5"]
    if not is_official:
        log.warning(
            "%s: MD5 %s differs from the official %s; accepted because its arrays pass "
            "validation (keys, dtypes, %d px, labels in {0, 1}, both classes per split).",
            path,
            md5,
            spec["md5"],
            size,
        )
    if sizes != spec["n_samples"]:
        log.warning(
            "%s: split sizes %s differ from the official %s", path, sizes, spec["n_samples"]
        )
    return Provenance(
        source, str(path), md5, file_digest(path, "sha256"), spec["md5"], is_official, sizes
    )


def find_local_copy(size: int) -> Path | None:
    name = official(size)["filename"]
    for d in candidate_dirs():
        if (d / name).is_file():
            return d / name
    return None


def download_official(size: int, dest_dir: Path) -> Path:
    """Download the official file with torchvision's downloader, which checks the MD5."""
    from torchvision.datasets.utils import download_url

    spec = official(size)
    download_url(spec["url"], root=str(dest_dir), filename=spec["filename"], md5=spec["md5"])
    path = dest_dir / spec["filename"]
    if not path.is_file() or file_digest(path, "md5") != spec["md5"]:
        raise DataError(f"{spec['url']}: download incomplete or MD5 mismatch")
    return path


def fetch(size: int, dest: Path) -> Provenance:
    """Copy PneumoniaMNIST at `size` px to `dest` from a local copy, else the official URL."""
    spec = official(size)
    local = find_local_copy(size)
    if local is not None:
        prov = _accept(local, size, "local copy")
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            shutil.copyfile(local, Path(tmp) / dest.name)
            os.replace(Path(tmp) / dest.name, dest)
        return prov
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        try:
            path = download_official(size, Path(tmp))
        except (OSError, RuntimeError) as err:
            places = "\n".join(f"  - {d / spec['filename']}" for d in candidate_dirs())
            raise DataError(
                f"Could not download {spec['url']} ({type(err).__name__}: {err}) and found no "
                f"local copy. Fix it one of these ways:\n"
                f"  1. connect to the internet and rerun (dvc repro);\n"
                f"  2. put {spec['filename']} in a directory and set {DATA_DIR_ENV}=<directory>;\n"
                f"  3. put it in medmnist's cache, {MEDMNIST_CACHE}.\n"
                f"Looked in:\n{places}"
            ) from None
        prov = _accept(path, size, spec["url"])
        os.replace(path, dest)
    return prov


def _row_keys(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    return [
        hashlib.sha256(bytes([int(y)]) + img.tobytes()).digest()
        for img, y in zip(images, labels, strict=True)
    ]


def canonical_order(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices that sort samples by a hash of their content, independent of the file's order."""
    keys = _row_keys(images, labels)
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def cap_per_class(
    labels: np.ndarray, cap: int | None, rng: np.random.Generator, keep_ratio: bool = False
) -> np.ndarray:
    """Indices of a capped subset, drawn with `rng`, kept in input order.

    Without `keep_ratio` every class keeps at most `cap` samples (small caps balance the
    classes). With it the smallest class keeps at most `cap` and every other class the same
    multiple of that as in the full data, so the imbalance survives the cap.
    """
    if cap is None:
        return np.arange(labels.shape[0])
    classes, counts = np.unique(labels, return_counts=True)
    minority = counts.min()
    keep = []
    for cls, n in zip(classes, counts, strict=True):
        limit = round(min(cap, minority) * n / minority) if keep_ratio else cap
        idx = np.flatnonzero(labels == cls)
        keep.append(rng.choice(idx, size=min(limit, n), replace=False))
    return np.sort(np.concatenate(keep))


def split_raw(
    raw: Path, size: int | None, train_per_class: int | None, seed: int, keep_ratio: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Official train/val/test of a MedMNIST file, canonically ordered, train maybe capped."""
    validate_medmnist(raw, size)
    arrays = read_arrays(raw)
    out = {}
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].reshape(-1)
        order = canonical_order(images, labels)
        images, labels = images[order], labels[order].astype(np.int64)
        if split == "train":
            rng = np.random.default_rng(seed)
            keep = cap_per_class(labels, train_per_class, rng, keep_ratio)
            images, labels = images[keep], labels[keep]
        out[split] = (images, labels)
    return out
