"""Class-balance arithmetic and the fused training set."""

import numpy as np
import pytest

from pneumogan.core.choices import METHODS
from pneumogan.core.errors import DataError
from pneumogan.data.balance import class_counts, minority_class, n_missing
from pneumogan.data.contract import load_weights, save_split, write_arrays
from pneumogan.data.fuse import class_weights, fuse, image_weights


def train_set(n0=10, n1=30):
    labels = np.r_[np.zeros(n0, np.int64), np.ones(n1, np.int64)]
    images = np.arange(labels.size, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
    return images, labels


def test_class_counts_has_both_classes_even_if_one_is_absent():
    assert class_counts(np.array([1, 1, 0], np.int64)).tolist() == [1, 2]
    assert class_counts(np.zeros(3, np.int64)).tolist() == [3, 0]
    assert class_counts(np.zeros(0, np.int64)).tolist() == [0, 0]


def test_minority_is_found_from_data():
    assert minority_class(train_set()[1]) == 0
    assert minority_class(1 - train_set()[1]) == 1
    with pytest.raises(DataError, match="one class only"):
        minority_class(np.ones(5, np.int64))


def test_n_missing():
    labels = train_set()[1]
    assert n_missing(labels, 1.0) == 20
    assert n_missing(labels, 0.5) == 5
    assert n_missing(labels, 0.2) == 0  # already above the target: nothing added
    assert n_missing(train_set(3, 25)[1], 0.28) == 4  # 0.28 * 25 is 7.000000000000001
    assert n_missing(1 - labels, 1.0) == 20  # whichever class is the minority


@pytest.mark.parametrize(
    ("method", "added", "synthetic", "oversampled"),
    [("gan", 20, 20, 0), ("oversample", 20, 0, 20), ("none", 0, 0, 0)],
)
def test_methods(method, added, synthetic, oversampled):
    assert method in METHODS
    synth = np.full((25, 4, 4), 255, np.uint8)
    images, labels, comp = fuse(
        train_set(), synth, method=method, target_ratio=1.0, rng=np.random.default_rng(0)
    )
    assert images.shape[0] == labels.shape[0] == 40 + added
    assert labels.dtype == np.int64
    assert comp["added_minority"] == added and comp["synthetic"] == synthetic
    assert comp["oversampled"] == oversampled
    assert "minority_class" not in comp and comp["total"] == 40 + added  # numbers, no ids
    assert (comp["real_normal"], comp["real_pneumonia"]) == (10, 30)
    np.testing.assert_array_equal(images[:40], train_set()[0])  # real images first, unchanged
    if method != "none":
        assert np.bincount(labels).tolist() == [30, 30] and comp["ratio"] == 1.0
    else:
        assert comp["ratio"] == round(10 / 30, 4)
    extra = images[40:]
    assert (labels[40:] == 0).all()  # every added image is labelled with the minority class
    if method == "gan":
        assert (extra == 255).all()
    if method == "oversample":  # copies of real minority images only
        assert set(extra[:, 0, 0].tolist()) <= set(range(10))


def test_gan_adds_the_first_synthetic_images_in_order():
    synth = np.arange(25, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2) + 100
    images, _, _ = fuse(
        train_set(), synth, method="gan", target_ratio=0.5, rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(images[40:], synth[:5])


def test_oversampling_is_drawn_with_rng():
    def extra(seed):
        return fuse(
            train_set(),
            np.zeros((0, 4, 4), np.uint8),
            method="oversample",
            target_ratio=1.0,
            rng=np.random.default_rng(seed),
        )[0][40:]

    np.testing.assert_array_equal(extra(0), extra(0))
    assert not np.array_equal(extra(0), extra(1))


def test_too_few_synthetic_images():
    with pytest.raises(DataError, match="3 synthetic images for 20 needed"):
        fuse(
            train_set(),
            np.zeros((3, 4, 4), np.uint8),
            method="gan",
            target_ratio=1.0,
            rng=np.random.default_rng(0),
        )


def test_unknown_method():
    with pytest.raises(ValueError, match=r"fuse\.method 'smote'"):
        fuse(
            train_set(),
            np.zeros((0, 4, 4), np.uint8),
            method="smote",
            target_ratio=1.0,
            rng=np.random.default_rng(0),
        )


def test_weighted_adds_nothing_and_weighs_the_minority_up():
    labels = np.array([0] * 10 + [1] * 30)
    images = np.zeros((40, 28, 28), np.uint8)
    out, out_labels, comp = fuse(
        (images, labels),
        images[:0],
        method="weighted",
        target_ratio=1.0,
        rng=np.random.default_rng(0),
    )
    assert out.shape == images.shape and np.array_equal(out_labels, labels)
    assert comp["added_minority"] == 0 and comp["ratio"] == pytest.approx(1 / 3, abs=1e-4)
    w = image_weights(labels, 1.0)
    assert w.dtype == np.float32 and w.mean() == pytest.approx(1.0)
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())  # classes weigh the same
    assert comp["minority_weight"] == pytest.approx(2.0) and comp[
        "majority_weight"
    ] == pytest.approx(2 / 3)
    half = class_weights(labels, 0.5)
    assert half[0] * 10 == pytest.approx(0.5 * half[1] * 30)


def test_weights_round_trip_and_bad_weights_are_refused(tmp_path):
    images, labels = np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 1, 1])
    save_split(tmp_path / "a.npz", images, labels)
    assert load_weights(tmp_path / "a.npz") is None
    save_split(tmp_path / "b.npz", images, labels, np.array([2.0, 0.5, 0.5, 0.5]))
    np.testing.assert_array_equal(load_weights(tmp_path / "b.npz"), [2.0, 0.5, 0.5, 0.5])
    write_arrays(tmp_path / "c.npz", images=images, labels=labels, weights=np.array([1.0, 0, 1, 1]))
    with pytest.raises(DataError, match="positive finite"):
        load_weights(tmp_path / "c.npz")
