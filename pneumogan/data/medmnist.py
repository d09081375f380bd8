"""Fetching a binary MedMNIST file (PneumoniaMNIST by default): a copy or the official download.

Where a file is looked for, in order: `data.path` (a declared DVC dependency of download, so a
file put there reruns it), $PNEUMOGAN_DATA_DIR, medmnist's cache (~/.medmnist), then the
official URL. The last three are mirrors of the official file named by `data.flag` and
`data.image_size`: they hold that file or a copy of its images.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pneumogan.core.errors import DataError
from pneumogan.data.contract import validate_medmnist

log = logging.getLogger(__name__)

FLAG = "pneumoniamnist"  # the default data.flag
DATA_DIR_ENV = "PNEUMOGAN_DATA_DIR"
MEDMNIST_CACHE = Path("~/.medmnist").expanduser()


def binary_flags() -> list[str]:
    """The 2D binary-class MedMNIST datasets (the 3D ones end in `3d`)."""
    info = medmnist_info()
    return sorted(
        k for k, v in info.items() if v["task"] == "binary-class" and not k.endswith("3d")
    )


def check_flag(flag: str, size: int) -> dict:
    """medmnist's INFO entry of `flag`, which must be a 2D binary dataset offered at `size` px."""
    flags = binary_flags()
    if flag not in flags:
        raise DataError(
            f"data.flag = {flag!r}: not a 2D binary-class MedMNIST dataset; choose one of {flags}"
        )
    info = medmnist_info()[flag]
    if f"url{_suffix(size)}" not in info:
        offered = sorted([28] + [int(k[4:]) for k in info if k.startswith("url_")])
        raise DataError(f"{flag} is not offered at {size} px; its sizes are {offered}")
    return info


def class_names(flag: str) -> list[str]:
    """Label 0's and label 1's names, from medmnist's INFO."""
    labels = medmnist_info()[flag]["label"]
    return [labels["0"], labels["1"]]


def _suffix(size: int) -> str:
    return "" if size == 28 else f"_{size}"


def official(size: int, flag: str = FLAG) -> dict:
    """URL, MD5, file name and split sizes of the official file at `size` px (medmnist.INFO)."""
    info = check_flag(flag, size)
    return {
        "url": info[f"url{_suffix(size)}"],
        "md5": info[f"MD5{_suffix(size)}"],
        "filename": filename(size, flag),
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


def filename(size: int, flag: str = FLAG) -> str:
    return f"{flag}{_suffix(size)}.npz"


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def candidate_dirs(path: Path | None = None) -> list[Path]:
    """Where a copy is looked for: `path` (data.path), $PNEUMOGAN_DATA_DIR, medmnist's cache."""
    dirs = [] if path is None else [Path(path)]
    if os.environ.get(DATA_DIR_ENV):
        dirs.append(Path(os.environ[DATA_DIR_ENV]).expanduser())
    dirs.append(MEDMNIST_CACHE)
    return dirs


@dataclass(frozen=True)
class Provenance:
    """What was fetched, without where on this machine: a path would make data/raw's hash
    differ between machines and between two spellings of one directory."""

    source: str  # "data.path", "local copy" (a mirror) or the official URL
    flag: str  # the MedMNIST dataset
    classes: list  # names of label 0 and label 1
    file: str  # the file's name
    md5: str
    sha256: str
    official_md5: str
    official: bool
    n_samples: dict


def _accept(path: Path, size: int, source: str, flag: str) -> Provenance:
    spec = official(size, flag)
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
        source,
        flag,
        class_names(flag),
        path.name,
        md5,
        file_digest(path, "sha256"),
        spec["md5"],
        is_official,
        sizes,
    )


def find_local_copy(size: int, flag: str = FLAG, path: Path | None = None) -> Path | None:
    name = filename(size, flag)
    for d in candidate_dirs(path):
        if (d / name).is_file():
            return d / name
    return None


def download_official(size: int, dest_dir: Path, flag: str = FLAG) -> Path:
    """Download the official file with torchvision's downloader, which checks the MD5."""
    # torchvision (and so torch, seconds to import) stays here: only a download from the URL
    # needs it; the download stage and the folder source otherwise never import torch.
    from torchvision.datasets.utils import download_url

    spec = official(size, flag)
    download_url(spec["url"], root=str(dest_dir), filename=spec["filename"], md5=spec["md5"])
    path = dest_dir / spec["filename"]
    if not path.is_file() or file_digest(path, "md5") != spec["md5"]:
        raise DataError(f"{spec['url']}: download incomplete or MD5 mismatch")
    return path


def fetch(size: int, dest: Path, flag: str = FLAG, path: Path | None = None) -> Provenance:
    """Copy MedMNIST's `flag` at `size` px to `dest` from a copy (`path` first), else its URL."""
    spec = official(size, flag)
    local = find_local_copy(size, flag, path)
    if local is not None:
        where = "data.path" if path is not None and local.parent == Path(path) else "local copy"
        prov = _accept(local, size, where, flag)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            shutil.copyfile(local, Path(tmp) / dest.name)
            os.replace(Path(tmp) / dest.name, dest)
        return prov
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        try:
            got = download_official(size, Path(tmp), flag)
        except (OSError, RuntimeError) as err:
            places = "\n".join(f"  - {d / spec['filename']}" for d in candidate_dirs(path))
            raise DataError(
                f"Could not download {spec['url']} ({type(err).__name__}: {err}) and found no "
                f"local copy. Fix it one of these ways:\n"
                f"  1. connect to the internet and rerun (dvc repro);\n"
                f"  2. put {spec['filename']} in data.path ({path}), where DVC tracks it;\n"
                f"  3. put it in a directory and set {DATA_DIR_ENV}=<directory>;\n"
                f"  4. put it in medmnist's cache, {MEDMNIST_CACHE}.\n"
                f"Looked in:\n{places}"
            ) from None
        prov = _accept(got, size, spec["url"], flag)
        os.replace(got, dest)
    return prov
