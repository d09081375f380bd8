"""Classifier networks, augmentation, mixup and the training loop."""

import numpy as np
import pytest
import torch

from pneumogan.classify import augment as augment_module
from pneumogan.classify import train as train_module
from pneumogan.classify.augment import augment, mixup
from pneumogan.classify.checkpoint import Classifier
from pneumogan.classify.nets import ClassifierConfig, SmallResNet, build
from pneumogan.classify.predictor import predict_proba
from pneumogan.classify.train import network, plain, train_classifier
from pneumogan.core.params import ReferenceParams, TrainParams
from tests.conftest import make_images, tiny_params


def tiny(n0=12, n1=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.r_[np.zeros(n0), np.ones(n1)].astype(np.int64))
    return make_images(labels, rng), labels


# ---------------------------------------------------------------- networks


@pytest.mark.parametrize(
    ("arch", "size"), [("resnet_small", 28), ("resnet_small", 64), ("resnet18", 64)]
)
def test_architectures(arch, size):
    model = build(ClassifierConfig(arch=arch, size=size, width=4)).eval()
    x = torch.zeros(2, 1, size, size)
    assert model(x).shape == (2,)
    assert model.features(x).ndim == 2 and model.features(x).shape[0] == 2


def test_the_registry_builds_the_default_network():
    assert isinstance(build(ClassifierConfig("resnet_small", 28, 4)), SmallResNet)


def test_unknown_arch_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'vgg'; train\.arch must be one of \['resnet_small'"):
        build(ClassifierConfig("vgg", 28, 4))


def test_small_resnet_features_are_four_times_width():
    model = build(ClassifierConfig("resnet_small", 28, 4)).eval()
    assert model.features(torch.zeros(3, 1, 28, 28)).shape == (3, 16)


# ---------------------------------------------------------------- mixup


def test_mixup_off_and_on():
    x, y = torch.arange(4.0).view(4, 1, 1, 1), torch.tensor([0.0, 1.0, 0.0, 1.0])
    g = torch.Generator().manual_seed(0)
    same = mixup(x, y, 0.0, np.random.default_rng(0), g)
    assert same[0] is x and same[1] is y
    mx, my = mixup(x, y, 0.4, np.random.default_rng(0), g)
    assert not torch.equal(mx, x)
    assert ((my >= 0) & (my <= 1)).all()
    assert torch.isclose(mx.sum(), x.sum())  # a convex mix with a permutation keeps the total
    assert torch.isclose(my.sum(), y.sum())


def test_mixup_mixes_images_and_labels_with_one_lambda():
    x = torch.tensor([0.0, 10.0, 20.0, 30.0]).view(4, 1, 1, 1)
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    mx, my = mixup(x, y, 0.4, np.random.default_rng(3), torch.Generator().manual_seed(3))
    lam = float(np.random.default_rng(3).beta(0.4, 0.4))
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(mx, lam * x + (1 - lam) * x[perm])
    torch.testing.assert_close(my, lam * y + (1 - lam) * y[perm])  # labels follow their images


# ---------------------------------------------------------------- augmentation


def blob(side=28, centre=(14, 14), radius=3):
    """One bright disc on black, away from the border (border padding repeats the black)."""
    yy, xx = np.mgrid[:side, :side]
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    return torch.from_numpy(disc.astype(np.float32)).view(1, 1, side, side)


def centre_of_mass(x):
    """(row, column) of each image's centre of mass."""
    img = x[:, 0].double()
    rows = torch.arange(img.shape[1], dtype=torch.float64).view(1, -1, 1)
    cols = torch.arange(img.shape[2], dtype=torch.float64).view(1, 1, -1)
    total = img.sum((1, 2))
    return torch.stack([(img * rows).sum((1, 2)) / total, (img * cols).sum((1, 2)) / total], 1)


def fixed_rand(monkeypatch, angle_u, shift_u):
    """Make augment's draws fixed: torch.rand(n) gives `angle_u`, torch.rand(n, 2) `shift_u`."""

    def rand(*shape, generator=None):
        value = angle_u if len(shape) == 1 else shift_u
        return torch.as_tensor(value, dtype=torch.float32).expand(*shape).clone()

    monkeypatch.setattr(augment_module.torch, "rand", rand)


def test_augment_off_returns_the_input():
    x = torch.randn(5, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert augment(x, 0.0, 0.0, g) is x
    assert torch.equal(g.get_state(), state)  # and draws nothing
    out = augment(x, 0.1, 10.0, g)
    assert out.shape == x.shape and not torch.equal(out, x)


def test_zero_draw_is_the_identity(monkeypatch):
    """u = 0.5 means no rotation and no shift: the image comes back unchanged, up to the
    float32 rounding of resampling on an identity grid (about 1e-5 for values near 3)."""
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fixed_rand(monkeypatch, 0.5, [0.5, 0.5])
    torch.testing.assert_close(augment(x, 0.1, 10.0, torch.Generator()), x, rtol=0, atol=1e-4)


@pytest.mark.parametrize("max_shift", [0.05, 0.1, 0.25])
def test_largest_shift_moves_a_blob_max_shift_of_the_side(monkeypatch, max_shift):
    """u = 1 and u = 0 are the extreme shifts: ±max_shift·side, opposite directions.

    affine_grid samples the input at (output position + shift), so a positive grid shift
    moves the content towards lower coordinates; the x shift is along columns.
    """
    x, side = blob(), 28
    before = centre_of_mass(x)[0]

    def moved(u_x, u_y):
        fixed_rand(monkeypatch, 0.5, [u_x, u_y])
        return (centre_of_mass(augment(x, max_shift, 0.0, torch.Generator()))[0] - before).tolist()

    d = max_shift * side
    assert moved(1.0, 0.5) == pytest.approx([0.0, -d], abs=1e-4)  # (row, column)
    assert moved(0.0, 0.5) == pytest.approx([0.0, d], abs=1e-4)
    assert moved(0.5, 1.0) == pytest.approx([-d, 0.0], abs=1e-4)
    assert moved(0.5, 0.0) == pytest.approx([d, 0.0], abs=1e-4)
    assert moved(0.75, 0.25) == pytest.approx([d / 2, -d / 2], abs=1e-4)  # linear in u


def test_random_shifts_stay_within_max_shift():
    """With real draws every displacement is at most max_shift·side, and they vary."""
    x = blob().expand(64, 1, 28, 28).contiguous()
    max_shift = 0.1
    out = augment(x, max_shift, 0.0, torch.Generator().manual_seed(0))
    moved = centre_of_mass(out) - centre_of_mass(x)
    assert moved.abs().max() <= max_shift * 28 + 1e-6
    assert moved.abs().max() > 0.5 * max_shift * 28  # some draw is far from the centre
    assert (moved[:, 0] > 0).any() and (moved[:, 0] < 0).any()  # both directions
    assert (moved[:, 1] > 0).any() and (moved[:, 1] < 0).any()
    assert len({tuple(m) for m in moved.round(decimals=3).tolist()}) == 64  # one draw per image
    again = augment(x, max_shift, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # the generator decides everything


def test_largest_rotation_at_90_degrees_is_a_quarter_turn(monkeypatch):
    """u = 1 and u = 0 rotate by ±max_rotate; at 90° the pixel grid maps onto itself."""
    x = torch.randn(2, 1, 28, 28)
    turned = {}
    for u in (0.0, 1.0):
        fixed_rand(monkeypatch, u, [0.5, 0.5])
        turned[u] = augment(x, 0.0, 90.0, torch.Generator())
    quarter = {k: torch.rot90(x, k, dims=(2, 3)) for k in (1, -1)}
    # one extreme is a quarter turn one way, the other extreme the other way
    ks = [k for t in turned.values() for k, q in quarter.items() if torch.allclose(t, q, atol=1e-4)]
    assert sorted(ks) == [-1, 1]


def test_random_rotation_keeps_the_centre_of_a_centred_blob():
    x = blob(centre=(13.5, 13.5), radius=4).expand(16, 1, 28, 28).contiguous()
    out = augment(x, 0.0, 30.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(centre_of_mass(out), centre_of_mass(x), atol=1e-3, rtol=0)
    assert not torch.equal(out, x)


@pytest.mark.parametrize(("u", "factor"), [(1.0, 1.25), (0.0, 0.75)])
def test_extreme_zoom_scales_a_centred_disc(monkeypatch, u, factor):
    """u = 1 magnifies by 1 + max_zoom and u = 0 shrinks by 1 − max_zoom: area goes as factor²."""
    x = blob(centre=(13.5, 13.5), radius=6)
    fixed_rand(monkeypatch, u, [0.5, 0.5])  # rotation 0 (max_rotate 0), no shift
    out = augment(x, 0.0, 0.0, torch.Generator(), max_zoom=0.25)
    assert float(out.sum() / x.sum()) == pytest.approx(factor**2, rel=0.05)
    torch.testing.assert_close(centre_of_mass(out), centre_of_mass(x), atol=1e-3, rtol=0)


def test_contrast_scales_about_the_mean_and_shifts_within_its_bounds():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=g) * 0.6 - 0.3  # far from ±1: nothing clipped
    out = augment(x, 0.0, 0.0, torch.Generator().manual_seed(1), contrast=0.2)
    mean_in, mean_out = x.mean((1, 2, 3)), out.mean((1, 2, 3))
    ratio = out.std((1, 2, 3)) / x.std((1, 2, 3))
    assert ((ratio >= 0.8 - 1e-5) & (ratio <= 1.2 + 1e-5)).all() and ratio.std() > 0.05
    assert ((mean_out - mean_in).abs() <= 0.2 + 1e-5).all()
    centred_in = x - mean_in.view(-1, 1, 1, 1)
    centred_out = out - mean_out.view(-1, 1, 1, 1)
    torch.testing.assert_close(centred_out, centred_in * ratio.view(-1, 1, 1, 1), atol=1e-5, rtol=0)
    big = augment(torch.ones(4, 1, 28, 28), 0.0, 0.0, torch.Generator(), contrast=1.0)
    assert big.max() <= 1.0 and big.min() >= -1.0  # clipped back to the pixel range


def test_contrast_leaves_the_geometric_draws_as_they_were():
    """Intensity is drawn after geometry: the same seed moves the images the same way."""
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)) - 0.5
    geo = augment(x, 0.1, 10.0, torch.Generator().manual_seed(3))
    both = augment(x, 0.1, 10.0, torch.Generator().manual_seed(3), contrast=0.3)
    centred = [t - t.mean((1, 2, 3), keepdim=True) for t in (geo, both)]
    scale = centred[1].std((1, 2, 3), keepdim=True) / centred[0].std((1, 2, 3), keepdim=True)
    torch.testing.assert_close(centred[1], centred[0] * scale, atol=1e-5, rtol=0)
    assert not torch.equal(geo, both)


# ---------------------------------------------------------------- training


def settings(base: TrainParams | None = None, **changes) -> TrainParams:
    """A `train` section (tiny params' by default) with some knobs changed, validated."""
    raw = base.model_dump() if base else tiny_params()["train"]
    return TrainParams.model_validate({**raw, **changes})


SETTINGS = settings(
    epochs=3,
    batch_size=8,
    lr=3e-3,
    warmup_fraction=0.3,
    weight_decay=0.0,
    patience=5,
    max_shift=0.05,
    max_rotate=5.0,
    max_zoom=0.0,
    contrast=0.0,
    ema=0.0,
)
MIXUP = 0.2


def run_training(seed=0, settings=SETTINGS, on_epoch=lambda e, m: None, net=None, mixup=MIXUP):
    torch.manual_seed(seed)  # weight init: the stage seeds torch's global generator
    return train_classifier(
        tiny(),
        tiny(4, 6, seed=1),
        net or ClassifierConfig("resnet_small", 28, 4),
        settings,
        mixup=mixup,
        rng=np.random.default_rng(seed),
        device=torch.device("cpu"),
        on_epoch=on_epoch,
    )


def test_training_is_deterministic_and_picks_best_epoch():
    seen = []
    c1, s1 = run_training(on_epoch=lambda e, m: seen.append((e, m)))
    c2, s2 = run_training()
    assert s1 == s2 and 1 <= s1["best_epoch"] <= 3 and s1["epochs_run"] == 3
    assert isinstance(c1, Classifier) and c1.info == s1
    assert not c1.model.training and next(c1.model.parameters()).device.type == "cpu"
    for a, b in zip(c1.model.state_dict().values(), c2.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [e for e, _ in seen] == [1, 2, 3]
    assert set(seen[0][1]) == {"train_loss", "val_loss", "val_auc", "lr"}
    assert s1["best_val_auc"] == max(m["val_auc"] for _, m in seen)
    x = tiny()[0]
    np.testing.assert_array_equal(
        predict_proba(c1, x, batch_size=8), predict_proba(c2, x, batch_size=5)
    )


def test_another_seed_trains_another_network():
    c1, _ = run_training(seed=0)
    c2, _ = run_training(seed=1)
    p1, p2 = (predict_proba(c, tiny()[0], batch_size=8) for c in (c1, c2))
    assert not np.array_equal(p1, p2)


def test_early_stopping_keeps_the_best_epoch(monkeypatch):
    """Validation AUC falls after epoch 2: training stops `patience` epochs later."""
    aucs = iter([0.6, 0.9, 0.8, 0.7, 0.65, 0.6, 0.5])
    monkeypatch.setattr(train_module, "roc_auc_score", lambda y, p: next(aucs))
    seen = []
    _, summary = run_training(
        settings=settings(SETTINGS, epochs=10, patience=2), on_epoch=lambda e, m: seen.append(e)
    )
    assert summary == {"best_epoch": 2, "best_val_auc": 0.9, "epochs_run": 4}
    assert seen == [1, 2, 3, 4]


def test_ema_with_no_memory_is_plain_training_and_with_memory_another_network():
    """Decay ~0 copies the weights every step (same network as without EMA, same draws);
    a real decay keeps an average that differs from the last weights."""
    x = tiny()[0]
    plain, s_plain = run_training()
    copy, s_copy = run_training(settings=settings(SETTINGS, ema=1e-12))
    np.testing.assert_allclose(
        predict_proba(copy, x, batch_size=8), predict_proba(plain, x, batch_size=8), atol=1e-6
    )
    assert s_copy["epochs_run"] == s_plain["epochs_run"]
    avg, _ = run_training(settings=settings(SETTINGS, ema=0.9))
    assert not np.allclose(
        predict_proba(avg, x, batch_size=8), predict_proba(plain, x, batch_size=8)
    )
    assert not avg.model.training
    assert set(avg.model.state_dict()) == set(plain.model.state_dict())  # a plain network


def test_unit_weights_train_the_same_network_and_class_weights_another():
    """Weights of 1 change nothing (same draws, same loss); other weights change the network."""
    x_tr, y_tr = tiny()
    x = x_tr

    def fit(weights):
        torch.manual_seed(0)
        clf, _ = train_classifier(
            (x_tr, y_tr),
            tiny(4, 6, seed=1),
            ClassifierConfig("resnet_small", 28, 4),
            SETTINGS,
            mixup=MIXUP,
            rng=np.random.default_rng(0),
            device=torch.device("cpu"),
            weights=weights,
        )
        return predict_proba(clf, x, batch_size=8)

    plain = fit(None)
    np.testing.assert_allclose(fit(np.ones(len(y_tr), np.float32)), plain, rtol=0, atol=1e-6)
    skewed = np.where(y_tr == 0, 3.0, 0.5).astype(np.float32)
    assert not np.allclose(fit(skewed), plain, atol=1e-4)


def test_a_reference_section_trains_plainly():
    """The reference section has a schedule and no regularisation knobs: it trains as the
    train section would with no weight decay, augmentation, averaging, early stop or mixup."""
    schedule = {k: getattr(SETTINGS, k) for k in ("epochs", "batch_size", "lr", "warmup_fraction")}
    reference = ReferenceParams(**schedule, width=4, device="cpu")
    regularisation = plain(reference).model_dump()
    assert regularisation["patience"] == reference.epochs
    assert not any(v for k, v in regularisation.items() if k != "patience")
    torch.manual_seed(0)
    ref, s_ref = train_classifier(  # as the reference stage calls it: no mixup given
        tiny(),
        tiny(4, 6, seed=1),
        ClassifierConfig("resnet_small", 28, 4),
        reference,
        rng=np.random.default_rng(0),
        device=torch.device("cpu"),
    )
    same, s_same = run_training(settings=settings(SETTINGS, **regularisation), mixup=0.0)
    assert s_ref == s_same
    x = tiny()[0]
    np.testing.assert_array_equal(
        predict_proba(ref, x, batch_size=8), predict_proba(same, x, batch_size=8)
    )


def test_the_train_section_describes_the_network():
    train = settings(SETTINGS, arch="resnet18", input_size=64, ensemble=2, tta_shift=1.5)
    net = network(train, 28)
    assert (net.arch, net.size, net.side, net.members, net.tta_shift) == (
        "resnet18",
        28,
        64,
        2,
        1.5,
    )
    assert net.width == train.width and not net.pretrained
