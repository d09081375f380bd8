"""Synthesis quality in the reference network's features, against real-data floors and scales."""

import math

import numpy as np
import pytest
import torch

from pneumogan.classify.checkpoint import Classifier
from pneumogan.classify.nets import ClassifierConfig, build
from pneumogan.core.errors import DataError
from pneumogan.core.transforms import ImageTransform
from pneumogan.generate.nets import GanConfig, Generator
from pneumogan.generate.quality import HeldoutFID, distances, embed, fid, nearest_l2, quality_report
from tests.conftest import make_images


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    cfg = ClassifierConfig("resnet_small", 28, 4)
    return Classifier(build(cfg).eval(), cfg, ImageTransform(size=28), info={})


def sets(seed=0):
    rng = np.random.default_rng(seed)
    return (
        make_images(np.zeros(40, np.int64), rng),
        make_images(np.zeros(40, np.int64), rng),
        make_images(np.ones(40, np.int64), rng),
    )


def test_embed_gives_float64_features_independent_of_batch(reference):
    images = sets()[0]
    feats = embed(reference, images)
    assert feats.dtype == torch.float64 and feats.shape == (40, 16)
    torch.testing.assert_close(embed(reference, images, batch_size=7), feats)


def test_distances_rank_same_class_below_other_class(reference):
    train0, held0, held1 = sets()
    real = embed(reference, train0)
    same = distances(real, embed(reference, held0), nearest_k=3, kid_subsets=5, seed=0)
    other = distances(real, embed(reference, held1), nearest_k=3, kid_subsets=5, seed=0)
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
    again = distances(real, embed(reference, held0), nearest_k=3, kid_subsets=5, seed=0)
    assert again == same  # KID's subsets are seeded


def test_kid_does_not_touch_the_global_generator(reference):
    real = embed(reference, sets()[0])
    state = torch.get_rng_state()
    distances(real, real, nearest_k=3, kid_subsets=5, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_k_shrinks_to_fit_a_tiny_capped_training_set(reference):
    train0, held0, _ = sets()
    few = distances(
        embed(reference, train0[:4]), embed(reference, held0), nearest_k=5, kid_subsets=5, seed=0
    )
    assert few["nearest_k"] == 2 and 0 <= few["coverage"] <= 1
    with pytest.raises(DataError, match="at least 3 real and 3 synthetic images, got 2 and 40"):
        distances(
            embed(reference, train0[:2]),
            embed(reference, held0),
            nearest_k=5,
            kid_subsets=5,
            seed=0,
        )
    with pytest.raises(DataError, match="got 40 and 2"):
        distances(
            embed(reference, train0),
            embed(reference, held0[:2]),
            nearest_k=5,
            kid_subsets=5,
            seed=0,
        )


def test_nearest_l2():
    pool = np.zeros((3, 2, 2), np.uint8)
    pool[1] = 10
    q = np.full((2, 2, 2), 10, np.uint8)
    q[1] = 13
    np.testing.assert_allclose(nearest_l2(q, pool), [0.0, 6.0])


def test_heldout_fid_scores_a_tiny_generator(reference):
    torch.manual_seed(0)
    G = Generator(GanConfig(size=28, latent_dim=8, width=4, variant="dcgan")).eval()
    z = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))
    held0 = sets()[1]
    score = HeldoutFID(reference, held0, z, ImageTransform(size=28))
    with torch.no_grad():
        value = score(G)
        assert isinstance(value, float) and math.isfinite(value) and value > 0
        assert score(G) == value  # the same noise every time
    # the score is FID against the held-out features of the same decoded images
    fake = ImageTransform(size=28).decode(G(z).detach())
    assert value == pytest.approx(fid(embed(reference, held0), embed(reference, fake)))


def report_kwargs(rng_seed=0):
    train0, held0, held1 = sets()
    return dict(
        train_minority=train0,
        heldout_minority=held0,
        heldout_majority=held1,
        label=0,
        nearest_k=3,
        kid_subsets=5,
        copy_percentile=5.0,
        rng=np.random.default_rng(rng_seed),
    )


def test_copies_are_caught_and_report_is_complete(reference):
    train0 = sets()[0]
    copies = quality_report(reference, synthetic=train0[:20], **report_kwargs())
    assert copies["memorisation"]["share_synthetic"] == 1.0
    assert copies["memorisation"]["share_real_heldout"] <= 0.1
    assert copies["n"] == {"probe": 20, "train_minority": 40, "synthetic": 20}
    fresh = quality_report(reference, synthetic=sets(seed=1)[0], **report_kwargs())
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
    # the floor (held-out real) is below the scale (other class)
    assert fresh["real_heldout"]["fid"] < fresh["other_class"]["fid"]
    again = quality_report(reference, synthetic=sets(seed=1)[0], **report_kwargs())
    assert again == fresh  # deterministic for a fixed rng seed
