"""A folder of X-rays as the pipeline's raw data: a Kermany-style tree of PNG, JPEG and DICOM.

Layout, under `data.path`: `train/`, `val/` and `test/` (each optional), each holding one folder
per class named by `data.classes` (label 0, then label 1), or the class folders directly (then
every image is training data and split carves val and test out of it). Class folders may nest
subfolders. A file counts as an image when its suffix is .png, .jpg, .jpeg, .dcm or .dicom, or
when it has no suffix and is DICOM; hidden files and other files are ignored (and counted).

Every image is read to grayscale uint8 (`readers.read_image`), made square (`data.fit`: crop
its centre or pad it with black) and resized to `data.image_size`. Files that cannot be read
are reported with the reason; past `data.max_unreadable` (a fraction of the images) the
download fails. A data.path that is missing or empty, or a class folder without images, fails
before anything is read, naming the folder and what to do. The patient of an image is the
first group of `data.patient_pattern` found in its file name without the suffix (the whole
match when the pattern has no group); a name it does not match is a patient of its own.

Nothing here records where the tree is on this machine: file paths are relative to its root.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pneumogan.core.errors import DataError
from pneumogan.core.progress import progress
from pneumogan.data.contract import SPLITS
from pneumogan.data.readers import SUFFIXES, ReadError, fit, is_dicom, read_image

log = logging.getLogger(__name__)

FILENAME = "folder.npz"  # the raw file download writes for a folder source
REPORT = "unreadable.csv"  # beside it: every image that could not be read, with the reason


@dataclass(frozen=True)
class Entry:
    split: str
    label: int
    rel: str  # path relative to the tree's root, with '/'


@dataclass
class Scan:
    layout: str  # "splits" (train/val/test folders) or "flat" (class folders at the root)
    entries: list[Entry] = field(default_factory=list)
    ignored: int = 0  # files that are not images (hidden files, other suffixes)


def _is_image(path: Path) -> bool:
    if path.suffix.lower() in SUFFIXES:
        return True
    return path.suffix == "" and is_dicom(path)


LAYOUT = "{0}/ and {1}/ folders (or train/, val/ and test/ folders, each holding those)"


def _folders(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_root(folder: Path, classes: tuple[str, str]) -> bool:
    """Whether a folder is laid out as a tree's root: split folders, or the class folders."""
    return any((folder / s).is_dir() for s in SPLITS) or all((folder / c).is_dir() for c in classes)


def _class_dirs(root: Path, parent: Path, classes: tuple[str, str]) -> list[Path]:
    found = _folders(parent)
    missing = [c for c in classes if c not in found]
    if missing:
        # data.path one level too high (the folder holding chest_xray/) is a common slip; only
        # when the root itself lacks the classes, and never naming a split folder: a misnamed
        # class folder in train/ is fixed by renaming it, not by pointing data.path at test/
        below = [
            root / f
            for f in (_folders(root) if parent == root else [])
            if f not in SPLITS and _is_root(root / f, classes)
        ]
        if below:
            fix = f"Set data.path to {str(below[0])!r}, which holds them"
        elif found:
            now = list(classes)
            fix = f"Name the class folders in data.classes (label 0, then label 1; now {now})"
        else:
            fix = f"Sort the images into {LAYOUT.format(*classes)}"
        raise DataError(
            f"{parent}: no class folder {' or '.join(missing)} (found: {found or 'no folders'}). "
            + fix
        )
    return [parent / c for c in classes]


def check_root(root: Path, classes: tuple[str, str]) -> None:
    """Raise DataError naming the folder and the fix when data.path is not a folder or is empty."""
    root = Path(root)
    if not root.is_dir():
        what = "a file, not a folder" if root.exists() else "no such folder"
        raise DataError(
            f"data.path = {str(root)!r}: {what}. Point data.path at the folder holding your "
            f"X-rays in {LAYOUT.format(*classes)}: dvc exp run -S data.path=/path/to/chest_xray"
        )
    if not any(not p.name.startswith(".") for p in root.iterdir()):
        raise DataError(
            f"data.path = {str(root)!r}: the folder is empty. Put your X-rays there in "
            f"{LAYOUT.format(*classes)}, or point data.path at the folder that holds them"
        )


def scan(root: Path, classes: tuple[str, str]) -> Scan:
    """Every image file under `root`, with its split and label, sorted by path."""
    root = Path(root)
    check_root(root, classes)
    split_dirs = [s for s in SPLITS if (root / s).is_dir()]
    layout = "splits" if split_dirs else "flat"
    result = Scan(layout)
    for split in split_dirs or ["train"]:
        parent = root / split if split_dirs else root
        for label, cdir in enumerate(_class_dirs(root, parent, classes)):
            found = len(result.entries)
            ignored = result.ignored
            for path in sorted(cdir.rglob("*")):
                rel = path.relative_to(root)
                if not path.is_file() or any(part.startswith(".") for part in rel.parts):
                    result.ignored += path.is_file()
                    continue
                if _is_image(path):
                    result.entries.append(Entry(split, label, rel.as_posix()))
                else:
                    result.ignored += 1
            if len(result.entries) == found:
                _empty_class(cdir, split if split_dirs else "", result.ignored - ignored)
    return result


def _empty_class(cdir: Path, split: str, ignored: int) -> None:
    """Raise DataError for a class folder without images, which split could not use."""
    others = f"; {ignored} other files ignored" if ignored else ""
    carve = (
        f", or remove {cdir.parent} to have split carve {split} out of train"
        if split in ("val", "test")
        else ""
    )
    raise DataError(
        f"{cdir}: class folder {cdir.name!r} holds no images (PNG, JPEG or DICOM{others}). "
        f"Put the {cdir.name} images there{carve}"
    )


def patient_of(rel: str, pattern: str) -> str:
    """The patient id of a file: the pattern's first group in its name (without suffix)."""
    stem = Path(rel).stem
    m = re.search(pattern, stem)
    if m is None:
        return rel  # a patient of its own
    return m.group(1) if m.re.groups else m.group(0)


def read_tree(
    root: Path,
    classes: tuple[str, str],
    size: int,
    mode: str,
    patient_pattern: str,
    max_unreadable: float,
) -> tuple[dict[str, np.ndarray], list[tuple[str, str]], dict]:
    """Read a tree to MedMNIST-style arrays (plus files, patients, original shapes per split).

    Returns the arrays, the unreadable files as (path, reason), and a summary for provenance.
    """
    root = Path(root)
    tree = scan(root, classes)
    rows: dict[str, list] = {s: [] for s in SPLITS}
    bad: list[tuple[str, str]] = []
    manifest = hashlib.sha256()
    start = time.perf_counter()
    for e in progress(tree.entries, desc="reading images", unit="img"):
        path = root / e.rel
        try:
            data = path.read_bytes()
        except OSError as err:
            bad.append((e.rel, f"cannot be opened ({type(err).__name__}: {err.strerror})"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        manifest.update(f"{e.split}\t{e.label}\t{e.rel}\t{digest}\n".encode())
        try:
            image = read_image(path)
        except ReadError as err:
            bad.append((e.rel, str(err).removeprefix(f"{path}: ")))
            continue
        rows[e.split].append((fit(image, size, mode), e.label, e.rel, image.shape))
    n = len(tree.entries)
    log.info("read %d images in %.1f s (%d unreadable)", n, time.perf_counter() - start, len(bad))
    if len(bad) > max_unreadable * n:
        shown = "\n".join(f"  {rel}: {why}" for rel, why in bad[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DataError(
            f"data.path = {str(root)!r}: {len(bad)} of {n} images ({len(bad) / n:.1%}) cannot "
            f"be read, more than data.max_unreadable ({max_unreadable:.1%}):\n{shown}{more}\n"
            "Fix or remove those files, or raise data.max_unreadable to skip them."
        )
    arrays: dict[str, np.ndarray] = {}
    counts: dict[str, dict[str, int]] = {}
    for split, got in rows.items():
        if not got:
            continue
        images, labels, rels, shapes = zip(*got, strict=True)
        arrays[f"{split}_images"] = np.stack(images).astype(np.uint8)
        arrays[f"{split}_labels"] = np.array(labels, dtype=np.int64)
        arrays[f"{split}_files"] = np.array(rels, dtype=str)
        arrays[f"{split}_patients"] = np.array([patient_of(r, patient_pattern) for r in rels])
        arrays[f"{split}_shapes"] = np.array(shapes, dtype=np.int64).reshape(-1, 2)
        counts[split] = {classes[k]: int(np.sum(arrays[f"{split}_labels"] == k)) for k in (0, 1)}
    summary = {
        "layout": tree.layout,
        "images": counts,
        "unreadable": len(bad),
        "ignored_files": tree.ignored,
        "manifest_sha256": manifest.hexdigest(),
    }
    return arrays, bad, summary


def write_report(path: Path, bad: list[tuple[str, str]]) -> None:
    """The unreadable files as CSV (path relative to the tree, reason); a header when none."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "reason"])
    w.writerows(bad)
    Path(path).write_text(buf.getvalue())


def write_tree(
    arrays: dict[str, np.ndarray], root: Path, classes: tuple[str, str], nested: int = 0
) -> int:
    """Write MedMNIST-style arrays as a tree of PNGs, `<split>/<class>/[<sub>/]<index>.png`.

    With `nested` > 0 a class folder holds that many subfolders, the images spread over them
    (a tree people might have). Returns the number of files written.
    """
    n = 0
    for split in SPLITS:
        if f"{split}_images" not in arrays:
            continue
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].reshape(-1)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = Path(root) / split / classes[int(label)]
            if nested:
                folder = folder / f"part{i % nested}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{split}{i:05d}.png")
            n += 1
    return n
