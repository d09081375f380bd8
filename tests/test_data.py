import json
import logging
import shutil

import numpy as np
import pytest

from pneumogan import data
from pneumogan.io import DataError, save_split
from tests.conftest import make_medmnist


def shuffled(raw: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for split in data.SPLITS:
        order = rng.permutation(raw[f"{split}_labels"].shape[0])
        out[f"{split}_images"] = raw[f"{split}_images"][order]
        out[f"{split}_labels"] = raw[f"{split}_labels"][order]
    return out


def test_official_metadata_comes_from_medmnist():
    spec = data.official(28)
    assert spec["filename"] == "pneumoniamnist.npz"
    assert spec["md5"] == "28209eda62fecd6e6a2d98b1501bb15f"
    assert data.official(64)["filename"] == "pneumoniamnist_64.npz"
    assert spec["n_samples"] == {"train": 4708, "val": 524, "test": 624}


def test_split_outputs_do_not_depend_on_file_order(tmp_path):
    raw = make_medmnist()
    np.savez(tmp_path / "a.npz", **raw)
    np.savez(tmp_path / "b.npz", **shuffled(raw, 1))
    assert (tmp_path / "a.npz").read_bytes() != (tmp_path / "b.npz").read_bytes()
    for name in ("a", "b"):
        for split, (x, y) in data.split_raw(tmp_path / f"{name}.npz", 28, None, 0).items():
            save_split(tmp_path / f"{name}_{split}.npz", x, y)
    for split in data.SPLITS:
        a, b = (tmp_path / f"{n}_{split}.npz" for n in "ab")
        assert a.read_bytes() == b.read_bytes()


def test_cap_per_class_draws_with_seed(tmp_path):
    np.savez(tmp_path / "r.npz", **make_medmnist())
    capped = data.split_raw(tmp_path / "r.npz", 28, 5, seed=3)
    assert np.bincount(capped["train"][1]).tolist() == [5, 5]
    assert capped["val"][1].size == 16  # only train is capped
    again = data.split_raw(tmp_path / "r.npz", 28, 5, seed=3)["train"][0]
    other = data.split_raw(tmp_path / "r.npz", 28, 5, seed=4)["train"][0]
    np.testing.assert_array_equal(capped["train"][0], again)
    assert not np.array_equal(capped["train"][0], other)
    assert np.bincount(data.split_raw(tmp_path / "r.npz", 28, 100, 0)["train"][1]).tolist() == [
        12,
        36,
    ]


def test_cap_keeping_the_ratio_caps_the_minority_and_scales_the_majority():
    labels = np.array([0] * 12 + [1] * 36)  # 1:3, class 0 is the minority
    rng = np.random.default_rng(0)
    keep = data.cap_per_class(labels, 4, rng, keep_ratio=True)
    assert np.bincount(labels[keep]).tolist() == [4, 12]
    assert np.all(np.diff(keep) > 0)  # input order kept
    # a cap above the minority count keeps everything
    assert data.cap_per_class(labels, 50, rng, keep_ratio=True).size == 48
    # without keep_ratio small caps balance the classes
    assert np.bincount(labels[data.cap_per_class(labels, 4, rng)]).tolist() == [4, 4]


def test_local_copy_with_other_md5_is_validated_and_warned(
    tmp_path, tiny_raw_dir, monkeypatch, caplog
):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tiny_raw_dir))
    dest = tmp_path / "out.npz"
    with caplog.at_level(logging.WARNING):
        prov = data.fetch(28, dest)
    assert dest.read_bytes() == (tiny_raw_dir / "pneumoniamnist.npz").read_bytes()
    assert prov.official is False and prov.source == "local copy"
    assert prov.sha256 == data.file_digest(dest, "sha256")
    assert "differs from the official" in caplog.text
    json.dumps(prov.__dict__)  # provenance must be serialisable


def test_local_copy_with_official_md5(tmp_path, tiny_raw_dir, monkeypatch):
    monkeypatch.setattr(data, "MEDMNIST_CACHE", tiny_raw_dir)
    md5 = data.file_digest(tiny_raw_dir / "pneumoniamnist.npz", "md5")
    real_official = data.official
    monkeypatch.setattr(data, "official", lambda size: {**real_official(size), "md5": md5})
    assert data.fetch(28, tmp_path / "out.npz").official is True


def test_invalid_local_copy_is_rejected(tmp_path, monkeypatch):
    raw = make_medmnist()
    raw["test_labels"] = raw["test_labels"] + 3
    np.savez(tmp_path / "pneumoniamnist.npz", **raw)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError, match=r"\[test\]: label values \[3, 4\] outside"):
        data.fetch(28, tmp_path / "out" / "x.npz")


def test_wrong_size_copy_is_rejected(tmp_path, monkeypatch):
    np.savez(tmp_path / "pneumoniamnist_64.npz", **make_medmnist())
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError, match="images are 28 px, expected 64 px"):
        data.fetch(64, tmp_path / "x.npz")


def test_no_network_and_no_copy_lists_the_fixes(tmp_path):
    with pytest.raises(DataError) as err:
        data.fetch(28, tmp_path / "x.npz")
    msg = str(err.value)
    assert "Could not download" in msg and data.DATA_DIR_ENV in msg and "medmnist's cache" in msg
    assert list(tmp_path.iterdir()) == []


def test_download_checks_md5(tmp_path, tiny_raw_dir, monkeypatch):
    """The download path: the file arrives, its MD5 is checked, provenance says official."""
    src = tiny_raw_dir / "pneumoniamnist.npz"
    md5 = data.file_digest(src, "md5")
    real_official = data.official
    monkeypatch.setattr(data, "official", lambda size: {**real_official(size), "md5": md5})

    def fake_download(url, root, filename, md5):
        shutil.copyfile(src, f"{root}/{filename}")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download)
    prov = data.fetch(28, tmp_path / "x.npz")
    assert prov.official and prov.source.startswith("https://")
