import numpy as np
import pytest
import torch

from pneumogan.classifier import ClassifierConfig, build
from pneumogan.quality import distances, embed, nearest_l2, quality_report
from tests.conftest import make_images


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build(ClassifierConfig("resnet_small", 28, 4)).eval()


def sets(seed=0):
    rng = np.random.default_rng(seed)
    return (
        make_images(np.zeros(40, np.int64), rng),
        make_images(np.zeros(40, np.int64), rng),
        make_images(np.ones(40, np.int64), rng),
    )


def test_distances_rank_same_class_below_other_class(model):
    train0, held0, held1 = sets()
    real = embed(model, train0)
    same = distances(real, embed(model, held0), nearest_k=3, kid_subsets=5, seed=0)
    other = distances(real, embed(model, held1), nearest_k=3, kid_subsets=5, seed=0)
    assert same["fid"] < other["fid"] and same["kid"] < other["kid"]
    assert set(same) == {
        "fid",
        "kid",
        "kid_std",
        "nearest_k",
        "precision",
        "recall",
        "density",
        "coverage",
    }
    assert same["nearest_k"] == 3
    identical = distances(real, real, nearest_k=3, kid_subsets=5, seed=0)
    assert identical["fid"] == pytest.approx(0.0, abs=1e-3)
    assert identical["precision"] == 1.0 and identical["coverage"] == 1.0


def test_k_shrinks_to_fit_a_tiny_capped_training_set(model):
    train0, held0, _ = sets()
    few = distances(
        embed(model, train0[:4]), embed(model, held0), nearest_k=5, kid_subsets=5, seed=0
    )
    assert few["nearest_k"] == 2 and 0 <= few["coverage"] <= 1
    with pytest.raises(ValueError, match="at least 3 real"):
        distances(embed(model, train0[:2]), embed(model, held0), nearest_k=5, kid_subsets=5, seed=0)


def test_nearest_l2():
    pool = np.zeros((3, 2, 2), np.uint8)
    pool[1] = 10
    q = np.full((2, 2, 2), 10, np.uint8)
    q[1] = 13
    np.testing.assert_allclose(nearest_l2(q, pool), [0.0, 6.0])


def test_copies_are_caught_and_report_is_complete(model):
    train0, held0, held1 = sets()
    kwargs = dict(
        train_minority=train0,
        heldout_minority=held0,
        heldout_majority=held1,
        label=0,
        nearest_k=3,
        kid_subsets=5,
        copy_percentile=5.0,
        seed=0,
    )
    copies = quality_report(model, synthetic=train0[:20], **kwargs)
    assert copies["memorisation"]["share_synthetic"] == 1.0
    assert copies["memorisation"]["share_real_heldout"] <= 0.1
    fresh = quality_report(model, synthetic=sets(seed=1)[0], **kwargs)
    assert fresh["memorisation"]["share_synthetic"] < 0.3  # iid with the held-out images
    assert set(fresh) == {
        "synthetic",
        "real_heldout",
        "other_class",
        "class_agreement",
        "memorisation",
        "n",
    }
    assert fresh["n"] == {"probe": 40, "train_minority": 40, "synthetic": 40}
    assert 0.0 <= fresh["class_agreement"]["synthetic"] <= 1.0
    again = quality_report(model, synthetic=sets(seed=1)[0], **kwargs)
    assert again == fresh  # deterministic for a fixed seed
