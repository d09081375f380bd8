import numpy as np
import pytest

from pneumogan.io import DataError, atomic_dir, atomic_path, load_split, save_split, write_arrays


def arrays(n=6, size=28):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), np.array([0, 1] * (n // 2))


def test_npz_bytes_are_reproducible(tmp_path):
    images, labels = arrays()
    save_split(tmp_path / "a.npz", images, labels)
    save_split(tmp_path / "b.npz", images, labels)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    got_images, got_labels = load_split(tmp_path / "a.npz")
    assert got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_images, images)


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
            lambda p: write_arrays(p, images=arrays()[0], labels=np.array([0, 1, 2, 0, 1, 0])),
            "label values [2] outside {0, 1}",
        ),
        (
            lambda p: write_arrays(p, images=arrays()[0], labels=np.zeros(6, np.int64)),
            "holds only class [0]",
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


def test_truncated_npz_is_reported(tmp_path):
    path = tmp_path / "t.npz"
    save_split(path, *arrays())
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_split(path)


def test_size_mismatch(tmp_path):
    save_split(tmp_path / "s.npz", *arrays())
    with pytest.raises(DataError, match="images are 28 px, expected 64 px"):
        load_split(tmp_path / "s.npz", size=64)


def test_atomic_path_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_dir_replaces_whole_or_nothing(tmp_path):
    target = tmp_path / "outdir"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a").write_text("x")
        raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("x")
    assert (target / "a").read_text() == "x"
