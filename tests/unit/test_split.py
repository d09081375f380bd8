"""The official splits in a content-defined order, and the optional per-class cap."""

import numpy as np
import pytest

from pneumogan.core.errors import DataError
from pneumogan.data.contract import SPLITS, save_split
from pneumogan.data.split import canonical_order, cap_per_class, split_raw
from tests.conftest import make_medmnist


def shuffled(raw: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for split in SPLITS:
        order = rng.permutation(raw[f"{split}_labels"].shape[0])
        out[f"{split}_images"] = raw[f"{split}_images"][order]
        out[f"{split}_labels"] = raw[f"{split}_labels"][order]
    return out


def rng(seed=0):
    return np.random.default_rng(seed)


def test_canonical_order_depends_on_content_only():
    raw = make_medmnist()
    images, labels = raw["train_images"], raw["train_labels"][:, 0]
    perm = rng(5).permutation(len(labels))
    a, b = canonical_order(images, labels), canonical_order(images[perm], labels[perm])
    assert sorted(a.tolist()) == list(range(len(labels)))  # a permutation
    np.testing.assert_array_equal(images[a], images[perm][b])
    np.testing.assert_array_equal(labels[a], labels[perm][b])


def test_split_outputs_do_not_depend_on_file_order(tmp_path):
    raw = make_medmnist()
    np.savez(tmp_path / "a.npz", **raw)
    np.savez(tmp_path / "b.npz", **shuffled(raw, 1))
    assert (tmp_path / "a.npz").read_bytes() != (tmp_path / "b.npz").read_bytes()
    for name in ("a", "b"):
        for split, (x, y) in split_raw(tmp_path / f"{name}.npz", 28, None, rng()).items():
            assert y.dtype == np.int64 and y.ndim == 1
            save_split(tmp_path / f"{name}_{split}.npz", x, y)
    for split in SPLITS:
        a, b = (tmp_path / f"{n}_{split}.npz" for n in "ab")
        assert a.read_bytes() == b.read_bytes()


def test_capped_split_does_not_depend_on_file_order(tmp_path):
    raw = make_medmnist()
    np.savez(tmp_path / "a.npz", **raw)
    np.savez(tmp_path / "b.npz", **shuffled(raw, 2))
    a = split_raw(tmp_path / "a.npz", 28, 5, rng(3))["train"]
    b = split_raw(tmp_path / "b.npz", 28, 5, rng(3))["train"]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_cap_per_class_draws_with_rng(tmp_path):
    np.savez(tmp_path / "r.npz", **make_medmnist())
    capped = split_raw(tmp_path / "r.npz", 28, 5, rng(3))
    assert np.bincount(capped["train"][1]).tolist() == [5, 5]
    assert capped["val"][1].size == 16 and capped["test"][1].size == 16  # only train is capped
    again = split_raw(tmp_path / "r.npz", 28, 5, rng(3))["train"][0]
    other = split_raw(tmp_path / "r.npz", 28, 5, rng(4))["train"][0]
    np.testing.assert_array_equal(capped["train"][0], again)
    assert not np.array_equal(capped["train"][0], other)
    uncapped = split_raw(tmp_path / "r.npz", 28, 100, rng())["train"][1]
    assert np.bincount(uncapped).tolist() == [12, 36]


def test_split_keeping_the_ratio(tmp_path):
    np.savez(tmp_path / "r.npz", **make_medmnist())
    train = split_raw(tmp_path / "r.npz", 28, 4, rng(), keep_ratio=True)["train"]
    assert np.bincount(train[1]).tolist() == [4, 12]  # 12:36 is 1:3


def test_cap_keeping_the_ratio_caps_the_minority_and_scales_the_majority():
    labels = np.array([0] * 12 + [1] * 36)  # 1:3, class 0 is the minority
    keep = cap_per_class(labels, 4, rng(), keep_ratio=True)
    assert np.bincount(labels[keep]).tolist() == [4, 12]
    assert np.all(np.diff(keep) > 0)  # input order kept
    # a cap above the minority count keeps everything
    assert cap_per_class(labels, 50, rng(), keep_ratio=True).size == 48
    # without keep_ratio small caps balance the classes
    assert np.bincount(labels[cap_per_class(labels, 4, rng())]).tolist() == [4, 4]
    # no cap: every index, and the generator is not touched
    g = rng(7)
    np.testing.assert_array_equal(cap_per_class(labels, None, g), np.arange(48))
    assert g.integers(1 << 30) == rng(7).integers(1 << 30)


def test_split_of_an_invalid_file_fails(tmp_path):
    raw = make_medmnist()
    raw["val_images"] = raw["val_images"].astype(np.float32)
    np.savez(tmp_path / "r.npz", **raw)
    with pytest.raises(DataError, match=r"\[val\]: images have dtype float32"):
        split_raw(tmp_path / "r.npz", 28, None, rng())
    with pytest.raises(DataError, match="file not found"):
        split_raw(tmp_path / "missing.npz", 28, None, rng())
