import numpy as np
import pytest
import torch

from pneumogan import gan
from pneumogan.io import DataError
from tests.conftest import make_images


@pytest.mark.parametrize("variant", ["dcgan", "sn_hinge"])
@pytest.mark.parametrize("size", [28, 64, 128, 224])
def test_networks_scale_with_size_and_train_one_step(size, variant):
    cfg = gan.GanConfig(size=size, latent_dim=8, width=2, variant=variant)
    G, D = gan.Generator(cfg), gan.Discriminator(cfg)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, 1, size, size)
    assert D(x).shape == (3,)
    labels = np.zeros(4, dtype=np.int64)
    images = make_images(labels, np.random.default_rng(0), size)
    seen = []
    gan.train_gan(
        images,
        cfg,
        epochs=1,
        batch_size=4,
        lr=2e-4,
        beta1=0.5,
        sample_every=1,
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
        on_epoch=lambda e, m: seen.append(m),
        on_samples=lambda e, s: seen.append(s.shape),
    )
    assert set(seen[0]) == {"loss_d", "loss_g", "d_real", "d_fake"}
    assert seen[1] == (64, 1, size, size)


def test_variants_differ_where_they_should():
    dc = gan.Discriminator(gan.GanConfig(28, 8, 4, "dcgan"))
    sn = gan.Discriminator(gan.GanConfig(28, 8, 4, "sn_hinge"))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in dc.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in sn.modules())
    assert sum(torch.nn.utils.parametrize.is_parametrized(m) for m in sn.modules()) == 3
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert gan.d_loss("sn_hinge", real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert gan.g_loss("sn_hinge", fake).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="GAN variant 'wgan'"):
        gan.Discriminator(gan.GanConfig(28, 8, 4, "wgan"))


def test_best_scoring_generator_is_kept():
    cfg = gan.GanConfig(size=28, latent_dim=8, width=2)
    images = make_images(np.zeros(4, dtype=np.int64), np.random.default_rng(0))
    scores = iter([5.0, 3.0, 4.0, 9.0])  # epochs 2, 4, 6 and the last, 7
    snapshots = {}

    def score(G):
        value = next(scores)
        snapshots[value] = {k: v.clone() for k, v in G.state_dict().items()}
        return value

    seen = []
    G, _, kept = gan.train_gan(
        images,
        cfg,
        epochs=7,
        batch_size=4,
        lr=2e-4,
        beta1=0.5,
        sample_every=100,
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
        on_epoch=lambda e, m: seen.append((e, m.get("fid_heldout"))),
        score=score,
        eval_every=2,
    )
    assert kept == 4
    assert [s for s in seen if s[1] is not None] == [(2, 5.0), (4, 3.0), (6, 4.0), (7, 9.0)]
    for k, v in G.state_dict().items():
        assert torch.equal(v, snapshots[3.0][k])


def test_unsupported_size():
    with pytest.raises(ValueError, match="not 4·2\\^k or 7·2\\^k"):
        gan.levels(50)


def test_uint8_map_is_fixed_not_stretched():
    x = torch.tensor([[-1.0, 0.0], [0.5, 1.0]]).view(1, 1, 2, 2) * 0.1  # low-contrast image
    out = gan.to_uint8(x)
    assert out.dtype == np.uint8
    assert out.tolist() == [[[115, 128], [134, 140]]]  # not stretched to 0..255
    back = gan.to_uint8(gan.to_unit(np.array([[[0, 255], [7, 128]]], dtype=np.uint8)))
    assert back.tolist() == [[[0, 255], [7, 128]]]


def test_checkpoint_round_trip_and_exact_synthesis(tmp_path):
    cfg = gan.GanConfig(size=28, latent_dim=8, width=4)
    G, D = gan.Generator(cfg), gan.Discriminator(cfg)
    gan.save_checkpoint(tmp_path / "g.pt", G, D, cfg, epoch=3, label=0)
    G2, meta = gan.load_generator(tmp_path / "g.pt")
    assert meta["label"] == 0 and meta["epoch"] == 3 and meta["variant"] == "dcgan"
    imgs = gan.synthesize(G2, 37, batch_size=10, generator=torch.Generator().manual_seed(1))
    again = gan.synthesize(G2, 37, batch_size=16, generator=torch.Generator().manual_seed(1))
    assert imgs.shape == (37, 28, 28) and imgs.dtype == np.uint8
    np.testing.assert_array_equal(imgs, again)
    assert gan.synthesize(G2, 0, batch_size=8, generator=torch.Generator()).shape == (0, 28, 28)


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "g.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a usable GAN checkpoint"):
        gan.load_generator(tmp_path / "g.pt")
