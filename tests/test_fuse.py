import numpy as np
import pytest

from pneumogan.fuse import fuse, minority_class, n_missing
from pneumogan.io import DataError


def train_set(n0=10, n1=30):
    labels = np.r_[np.zeros(n0, np.int64), np.ones(n1, np.int64)]
    images = np.arange(labels.size, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
    return images, labels


def test_minority_is_found_from_data():
    assert minority_class(train_set()[1]) == 0
    assert minority_class(1 - train_set()[1]) == 1
    with pytest.raises(DataError, match="one class only"):
        minority_class(np.ones(5, np.int64))


def test_n_missing():
    labels = train_set()[1]
    assert n_missing(labels, 1.0) == 20
    assert n_missing(labels, 0.5) == 5
    assert n_missing(labels, 0.2) == 0


@pytest.mark.parametrize(
    ("method", "added", "synthetic", "oversampled"),
    [("gan", 20, 20, 0), ("oversample", 20, 0, 20), ("none", 0, 0, 0)],
)
def test_methods(method, added, synthetic, oversampled):
    synth = np.full((25, 4, 4), 255, np.uint8)
    images, labels, comp = fuse(
        train_set(), synth, method=method, target_ratio=1.0, rng=np.random.default_rng(0)
    )
    assert images.shape[0] == labels.shape[0] == 40 + added
    assert comp["added_minority"] == added and comp["synthetic"] == synthetic
    assert comp["oversampled"] == oversampled
    if method != "none":
        assert np.bincount(labels).tolist() == [30, 30] and comp["ratio"] == 1.0
    extra = images[40:]
    if method == "gan":
        assert (extra == 255).all()
    if method == "oversample":  # copies of real minority images only
        assert set(extra[:, 0, 0].tolist()) <= set(range(10))


def test_too_few_synthetic_images():
    with pytest.raises(DataError, match="3 synthetic images for 20 needed"):
        fuse(
            train_set(),
            np.zeros((3, 4, 4), np.uint8),
            method="gan",
            target_ratio=1.0,
            rng=np.random.default_rng(0),
        )
