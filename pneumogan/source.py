"""Fetching PneumoniaMNIST: a local copy or the official download, with its provenance."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pneumogan.contract import validate_medmnist
from pneumogan.errors import DataError

log = logging.getLogger(__name__)

FLAG = "pneumoniamnist"
DATA_DIR_ENV = "PNEUMOGAN_DATA_DIR"
MEDMNIST_CACHE = Path("~/.medmnist").expanduser()


def official(size: int) -> dict:
    """URL, MD5, file name and split sizes of the official file at `size` px (medmnist.INFO)."""
    info = medmnist_info()[FLAG]
    suffix = "" if size == 28 else f"_{size}"
    return {
        "url": info[f"url{suffix}"],
        "md5": info[f"MD5{suffix}"],
        "filename": filename(size),
        "n_samples": dict(info["n_samples"]),
    }


def medmnist_info() -> dict:
    """medmnist's `INFO` dict, read from its `info.py` alone.

    `import medmnist` loads torch and its dataset classes (about 3 s); `info.py` imports
    only the standard library, so it is run on its own.
    """
    spec = importlib.util.find_spec("medmnist")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the medmnist package is not installed: run uv sync")
    path = Path(next(iter(spec.submodule_search_locations))) / "info.py"
    info_spec = importlib.util.spec_from_file_location("_medmnist_info", path)
    module = importlib.util.module_from_spec(info_spec)
    info_spec.loader.exec_module(module)
    return module.INFO


def filename(size: int) -> str:
    return f"{FLAG}{'' if size == 28 else f'_{size}'}.npz"


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


@dataclass(frozen=True)
class Provenance:
    """What was fetched, without where on this machine: a path would make data/raw's hash
    differ between machines and between two spellings of one directory."""

    source: str  # "local copy" or the official URL
    file: str  # the file's name
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
        source, path.name, md5, file_digest(path, "sha256"), spec["md5"], is_official, sizes
    )


def find_local_copy(size: int) -> Path | None:
    name = filename(size)
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
