"""Fetching PneumoniaMNIST: a validated local copy, else the official download (never in tests)."""

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pneumogan.core.errors import DataError
from pneumogan.data import medmnist
from tests.conftest import ROOT, make_medmnist


def test_official_metadata_comes_from_medmnist():
    spec = medmnist.official(28)
    assert spec["filename"] == "pneumoniamnist.npz" == medmnist.filename(28)
    assert spec["md5"] == "28209eda62fecd6e6a2d98b1501bb15f"
    assert spec["url"].startswith("https://")
    assert medmnist.official(64)["filename"] == "pneumoniamnist_64.npz" == medmnist.filename(64)
    assert medmnist.official(64)["md5"] != spec["md5"]
    assert spec["n_samples"] == {"train": 4708, "val": 524, "test": 624}


def test_official_metadata_loads_neither_torch_nor_medmnist():
    """The download stage reads medmnist's info.py alone; `import medmnist` would load torch."""
    code = (
        "import sys; from pneumogan.data.medmnist import official; official(28); "
        "print(sorted(m for m in ('torch', 'medmnist') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_local_copy_with_other_md5_is_validated_and_warned(
    tmp_path, tiny_raw_dir, monkeypatch, caplog
):
    monkeypatch.setenv(medmnist.DATA_DIR_ENV, str(tiny_raw_dir))
    dest = tmp_path / "out.npz"
    with caplog.at_level(logging.WARNING):
        prov = medmnist.fetch(28, dest)
    assert dest.read_bytes() == (tiny_raw_dir / "pneumoniamnist.npz").read_bytes()
    assert prov.official is False and prov.source == "local copy"
    assert prov.file == "pneumoniamnist.npz"  # no machine path in a hashed output
    assert prov.md5 == medmnist.file_digest(dest, "md5")
    assert prov.sha256 == medmnist.file_digest(dest, "sha256")
    assert prov.n_samples == {"train": 48, "val": 16, "test": 16}
    assert "differs from the official" in caplog.text
    assert "split sizes" in caplog.text  # the tiny file is not the official size either
    json.dumps(prov.__dict__)  # provenance must be serialisable


def test_local_copy_with_official_md5(tmp_path, tiny_raw_dir, monkeypatch):
    monkeypatch.setattr(medmnist, "MEDMNIST_CACHE", tiny_raw_dir)
    md5 = medmnist.file_digest(tiny_raw_dir / "pneumoniamnist.npz", "md5")
    real_official = medmnist.official
    monkeypatch.setattr(
        medmnist,
        "official",
        lambda size, flag=medmnist.FLAG: {**real_official(size, flag), "md5": md5},
    )
    assert medmnist.fetch(28, tmp_path / "out.npz").official is True


def test_data_dir_is_looked_in_before_the_medmnist_cache(tmp_path, tiny_raw_dir, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    np.savez(cache / "pneumoniamnist.npz", **make_medmnist(seed=1))
    monkeypatch.setattr(medmnist, "MEDMNIST_CACHE", cache)
    assert medmnist.find_local_copy(28) == cache / "pneumoniamnist.npz"
    monkeypatch.setenv(medmnist.DATA_DIR_ENV, str(tiny_raw_dir))
    assert medmnist.candidate_dirs() == [tiny_raw_dir, cache]
    assert medmnist.find_local_copy(28) == tiny_raw_dir / "pneumoniamnist.npz"
    assert medmnist.find_local_copy(64) is None


def test_invalid_local_copy_is_rejected(tmp_path, monkeypatch):
    raw = make_medmnist()
    raw["test_labels"] = raw["test_labels"] + 3
    np.savez(tmp_path / "pneumoniamnist.npz", **raw)
    monkeypatch.setenv(medmnist.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError, match=r"\[test\]: label values \[3, 4\] outside"):
        medmnist.fetch(28, tmp_path / "out" / "x.npz")


def test_wrong_size_copy_is_rejected(tmp_path, monkeypatch):
    np.savez(tmp_path / "pneumoniamnist_64.npz", **make_medmnist())
    monkeypatch.setenv(medmnist.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError, match="images are 28 px, expected 64 px"):
        medmnist.fetch(64, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_no_network_and_no_copy_lists_the_fixes(tmp_path):
    with pytest.raises(DataError) as err:
        medmnist.fetch(28, tmp_path / "x.npz")
    msg = str(err.value)
    assert (
        "Could not download" in msg and medmnist.DATA_DIR_ENV in msg and "medmnist's cache" in msg
    )
    assert "network disabled in tests" in msg  # the cause is passed on
    assert list(tmp_path.iterdir()) == []


def test_download_checks_md5(tmp_path, tiny_raw_dir, monkeypatch):
    """The download path: the file arrives, its MD5 is checked, provenance says official."""
    src = tiny_raw_dir / "pneumoniamnist.npz"
    md5 = medmnist.file_digest(src, "md5")
    real_official = medmnist.official
    monkeypatch.setattr(
        medmnist,
        "official",
        lambda size, flag=medmnist.FLAG: {**real_official(size, flag), "md5": md5},
    )

    def fake_download(url, root, filename, md5):
        shutil.copyfile(src, f"{root}/{filename}")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download)
    prov = medmnist.fetch(28, tmp_path / "x.npz")
    assert prov.official and prov.source.startswith("https://")
    assert (tmp_path / "x.npz").read_bytes() == src.read_bytes()
    assert list(tmp_path.iterdir()) == [tmp_path / "x.npz"]  # no temporary directory left


def test_download_with_wrong_md5_is_refused(tmp_path, tiny_raw_dir, monkeypatch):
    """A downloader that does not check the MD5 is caught by the second check."""
    src = tiny_raw_dir / "pneumoniamnist.npz"

    def fake_download(url, root, filename, md5):
        shutil.copyfile(src, f"{root}/{filename}")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download)
    with pytest.raises(DataError, match="MD5 mismatch"):
        medmnist.fetch(28, tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


def test_file_digest(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert medmnist.file_digest(tmp_path / "f", "md5") == "900150983cd24fb0d6963f7d28e17f72"
