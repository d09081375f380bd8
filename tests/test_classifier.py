import numpy as np
import pytest
import torch

from pneumogan import classifier as clf
from pneumogan.io import DataError
from tests.conftest import make_images


def tiny(n0=12, n1=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.r_[np.zeros(n0), np.ones(n1)].astype(np.int64))
    return make_images(labels, rng), labels


@pytest.mark.parametrize(
    ("arch", "size"), [("resnet_small", 28), ("resnet_small", 64), ("resnet18", 64)]
)
def test_architectures(arch, size):
    model = clf.build(clf.ClassifierConfig(arch=arch, size=size, width=4))
    assert model(torch.zeros(2, 1, size, size)).shape == (2,)


def test_mixup_off_and_on():
    x, y = torch.arange(4.0).view(4, 1, 1, 1), torch.tensor([0.0, 1.0, 0.0, 1.0])
    g = torch.Generator().manual_seed(0)
    same = clf.mixup(x, y, 0.0, np.random.default_rng(0), g)
    assert same[0] is x and same[1] is y
    mx, my = clf.mixup(x, y, 0.4, np.random.default_rng(0), g)
    assert not torch.equal(mx, x)
    assert ((my >= 0) & (my <= 1)).all()
    assert torch.isclose(mx.sum(), x.sum())  # a convex mix with a permutation keeps the total


def test_augment():
    x = torch.randn(5, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    assert clf.augment(x, 0.0, 0.0, g) is x
    out = clf.augment(x, 0.1, 10.0, g)
    assert out.shape == x.shape and not torch.equal(out, x)


def run_training(seed=0):
    return clf.train_classifier(
        tiny(),
        tiny(4, 6, seed=1),
        clf.ClassifierConfig("resnet_small", 28, 4),
        mixup_alpha=0.2,
        epochs=3,
        batch_size=8,
        lr=3e-3,
        weight_decay=0.0,
        patience=5,
        max_shift=0.05,
        max_rotate=5.0,
        seed=seed,
        generator=torch.Generator().manual_seed(seed),
        device=torch.device("cpu"),
    )


def test_training_is_deterministic_and_picks_best_epoch(tmp_path):
    torch.manual_seed(0)
    m1, s1 = run_training()
    torch.manual_seed(0)
    m2, s2 = run_training()
    assert s1 == s2 and 1 <= s1["best_epoch"] <= 3
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    clf.save_checkpoint(tmp_path / "c.pt", m1, clf.ClassifierConfig("resnet_small", 28, 4), s1)
    loaded = clf.load_classifier(tmp_path / "c.pt")
    x = tiny()[0]
    np.testing.assert_array_equal(
        clf.predict_proba(m1, x, batch_size=8), clf.predict_proba(loaded, x, batch_size=8)
    )


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "c.pt").write_bytes(b"")
    with pytest.raises(DataError, match="not a usable classifier checkpoint"):
        clf.load_classifier(tmp_path / "c.pt")
