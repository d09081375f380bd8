"""The npz data contract: byte-reproducible writes, every read validated."""

import numpy as np
import pytest

from pneumogan.core.errors import DataError
from pneumogan.data.contract import (
    SPLITS,
    load_split,
    read_arrays,
    save_split,
    validate_medmnist,
    validate_split,
    write_arrays,
)
from tests.conftest import make_medmnist


def arrays(n=6, size=28):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), np.array([0, 1] * (n // 2))


def test_npz_bytes_are_reproducible(tmp_path):
    images, labels = arrays()
    save_split(tmp_path / "a.npz", images, labels)
    save_split(tmp_path / "b.npz", images, labels)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    got_images, got_labels = load_split(tmp_path / "a.npz")
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_write_arrays_round_trips_any_keys(tmp_path):
    write_arrays(tmp_path / "x.npz", b=np.arange(3), a=np.eye(2))
    got = read_arrays(tmp_path / "x.npz")
    assert sorted(got) == ["a", "b"]
    np.testing.assert_array_equal(got["a"], np.eye(2))
    np.testing.assert_array_equal(got["b"], np.arange(3))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b"\x00garbage" * 10), "not a readable npz"),
        (lambda p: write_arrays(p, pictures=arrays()[0], labels=arrays()[1]), "missing key"),
        (
            lambda p: write_arrays(p, images=arrays()[0].astype(np.float32), labels=arrays()[1]),
            "dtype float32, expected uint8",
        ),
        (
            lambda p: write_arrays(p, images=arrays()[0][:, :, :20], labels=arrays()[1]),
            "expected N x H x W, H == W",
        ),
        (
            lambda p: write_arrays(p, images=arrays()[0], labels=arrays()[1][:4]),
            "(4,) labels for 6 images",
        ),
        (
            lambda p: write_arrays(p, images=arrays()[0], labels=arrays()[1].astype(float)),
            "labels have dtype float64, expected integers",
        ),
        (
            lambda p: write_arrays(p, images=arrays()[0], labels=np.array([0, 1, 2, 0, 1, 0])),
            "label values [2] outside {0, 1}",
        ),
        (
            lambda p: write_arrays(p, images=arrays()[0], labels=np.zeros(6, np.int64)),
            "of class normal (0) only",
        ),
    ],
)
def test_bad_split_files_fail_naming_file_and_problem(tmp_path, make, expected):
    path = tmp_path / "split.npz"
    make(path)
    with pytest.raises(DataError) as err:
        load_split(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_one_class_split_is_allowed_when_asked(tmp_path):
    images, _ = arrays()
    save_split(tmp_path / "s.npz", images, np.ones(6, np.int64))
    with pytest.raises(DataError, match=r"pneumonia \(1\) only"):
        load_split(tmp_path / "s.npz")
    _, labels = load_split(tmp_path / "s.npz", need_both_classes=False)
    assert labels.tolist() == [1] * 6


def test_truncated_npz_is_reported(tmp_path):
    path = tmp_path / "t.npz"
    save_split(path, *arrays())
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(DataError, match="not a readable npz") as err:
        load_split(path)
    assert str(path) in str(err.value) and "truncated" in str(err.value)


def test_size_mismatch(tmp_path):
    save_split(tmp_path / "s.npz", *arrays())
    with pytest.raises(DataError, match="images are 28 px, expected 64 px"):
        load_split(tmp_path / "s.npz", size=64)
    assert load_split(tmp_path / "s.npz", size=28)[0].shape == (6, 28, 28)


def test_validate_split_names_where():
    images, labels = arrays()
    validate_split(images, labels, "here")  # valid: no error
    with pytest.raises(DataError, match=r"^here: "):
        validate_split(images[:, None], labels, "here")


def test_medmnist_file_is_validated_per_split(tmp_path):
    raw = make_medmnist()
    np.savez(tmp_path / "ok.npz", **raw)
    sizes = validate_medmnist(tmp_path / "ok.npz", 28)
    assert sizes == {s: int(raw[f"{s}_labels"].shape[0]) for s in SPLITS}
    np.savez(tmp_path / "part.npz", **{k: v for k, v in raw.items() if not k.startswith("val")})
    with pytest.raises(DataError, match=r"missing key\(s\) \['val_images', 'val_labels'\]"):
        validate_medmnist(tmp_path / "part.npz", 28)
    raw["val_labels"] = raw["val_labels"] * 0
    np.savez(tmp_path / "bad.npz", **raw)
    with pytest.raises(DataError, match=r"bad\.npz \[val\]: .* only"):
        validate_medmnist(tmp_path / "bad.npz", 28)
    with pytest.raises(DataError, match=r"\[train\]: images are 28 px, expected 64 px"):
        validate_medmnist(tmp_path / "ok.npz", 64)
