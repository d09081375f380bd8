"""GAN networks, losses, checkpoint selection and the training loop."""

import math

import numpy as np
import pytest
import torch

from pneumogan.core.params import GanParams, ParamsError
from pneumogan.core.registry import GENERATORS
from pneumogan.generate import train as train_module
from pneumogan.generate.checkpoint import load_generator, save_gan
from pneumogan.generate.keeper import BestKeeper
from pneumogan.generate.nets import (
    Discriminator,
    GanConfig,
    Generator,
    ResBlockDown,
    ResBlockUp,
    build_generator,
    levels,
)
from pneumogan.generate.synthesis import draw
from pneumogan.generate.train import d_loss, g_loss, train_gan
from tests.conftest import make_images, tiny_params
from tests.unit.test_params import params_with


def settings(**changes) -> GanParams:
    """The tiny params' `gan` section, with some knobs changed (validated)."""
    base = dict(epochs=1, batch_size=4, lr=2e-4, beta1=0.5, sample_every=1, eval_every=1)
    return GanParams.model_validate({**tiny_params()["gan"], **base, **changes})


def run(images, cfg, s, **kwargs):
    kwargs.setdefault("score", lambda G: 0.0)
    return train_gan(
        images,
        cfg,
        s,
        generator=torch.Generator().manual_seed(0),
        fixed_z=torch.randn(64, cfg.latent_dim, generator=torch.Generator().manual_seed(1)),
        device=torch.device("cpu"),
        **kwargs,
    )


UNCONDITIONAL_GANS = [
    n for n in GENERATORS.names("adversarial") if "conditional" not in GENERATORS.get(n).tags
]
CONDITIONAL = GENERATORS.names("conditional")


@pytest.mark.parametrize("variant", UNCONDITIONAL_GANS)
@pytest.mark.parametrize("size", [28, 64, 128, 224])
def test_networks_scale_with_size_and_train_one_step(size, variant):
    cfg = GanConfig(size=size, latent_dim=8, width=2, variant=variant)
    G, D = Generator(cfg), Discriminator(cfg)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, 1, size, size)
    assert x.abs().max() <= 1  # tanh output, the range ImageTransform decodes
    assert D(x).shape == (3,)
    labels = np.zeros(4, dtype=np.int64)
    images = make_images(labels, np.random.default_rng(0), size)
    seen = []
    run(
        images,
        cfg,
        settings(variant=variant),
        on_epoch=lambda e, m: seen.append(m),
        on_samples=lambda e, s: seen.append(s.shape),
    )
    assert set(seen[0]) == {"loss_d", "loss_g", "d_real", "d_fake", "fid_heldout"}
    assert all(math.isfinite(v) for v in seen[0].values())
    assert seen[1] == (64, 1, size, size)


def test_levels():
    assert levels(28) == (7, 2) and levels(224) == (7, 5)
    assert levels(64) == (4, 4) and levels(128) == (4, 5)
    with pytest.raises(ValueError, match="not 4·2\\^k or 7·2\\^k"):
        levels(50)
    with pytest.raises(ValueError, match="not 4·2\\^k or 7·2\\^k"):
        levels(7)  # k must be at least 1


def test_variants_differ_where_they_should():
    dc = Discriminator(GanConfig(28, 8, 4, "dcgan"))
    sn = Discriminator(GanConfig(28, 8, 4, "sn_hinge"))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in dc.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in sn.modules())
    assert sum(torch.nn.utils.parametrize.is_parametrized(m) for m in sn.modules()) == 3
    res_g = Generator(GanConfig(28, 8, 4, "resnet_sn"))
    res_d = Discriminator(GanConfig(28, 8, 4, "resnet_sn"))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in res_g.modules())
    assert sum(isinstance(m, ResBlockUp) for m in res_g.modules()) == 2  # 7 -> 14 -> 28
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in res_d.modules())
    # two residual blocks of three convolutions each, and the final linear layer
    assert sum(torch.nn.utils.parametrize.is_parametrized(m) for m in res_d.modules()) == 7
    with pytest.raises(ValueError, match=r"'wgan'; gan\.variant must be one of \['dcgan'"):
        Discriminator(GanConfig(28, 8, 4, "wgan"))
    with pytest.raises(ValueError, match=r"GAN variant 'ddpm': a discriminator is one of"):
        Discriminator(GanConfig(28, 784, 4, "ddpm"))


def test_resnet_blocks_double_and_halve_the_side():
    x = torch.randn(2, 4, 7, 7)
    assert ResBlockUp(4, 2)(x).shape == (2, 2, 14, 14)
    assert ResBlockDown(4, 8, first=False)(x[..., :6, :6]).shape == (2, 8, 3, 3)


def test_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert d_loss("sn_hinge", real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert g_loss("sn_hinge", fake).item() == pytest.approx(1.0)
    assert d_loss("resnet_sn", real, fake).item() == d_loss("sn_hinge", real, fake).item()
    sp = torch.nn.functional.softplus  # BCE with logits: -log σ(x) = softplus(-x)
    expected_d = sp(-real).mean() + sp(fake).mean()
    assert d_loss("dcgan", real, fake).item() == pytest.approx(expected_d.item())
    assert g_loss("dcgan", fake).item() == pytest.approx(sp(-fake).mean().item())


def keeper_networks():
    cfg = GanConfig(28, 8, 2, "dcgan")
    return Generator(cfg), Discriminator(cfg)


def test_best_keeper_keeps_the_lowest_score_and_copies_the_weights():
    G, D = keeper_networks()
    best = BestKeeper()
    best.offer(5.0, 1, G, D)
    first = {k: v.clone() for k, v in G.state_dict().items()}
    with torch.no_grad():
        next(G.parameters()).add_(1.0)  # a later epoch's weights
    best.offer(7.0, 2, G, D)
    assert (best.score, best.epoch) == (5.0, 1)
    for k, v in best.generator.items():  # a copy, not a view of the live weights
        assert torch.equal(v, first[k]), k
    best.offer(3.0, 3, G, D)
    assert (best.score, best.epoch) == (3.0, 3)
    assert torch.equal(next(iter(best.generator.values())), next(iter(G.state_dict().values())))
    assert set(best.discriminator) == set(D.state_dict())


def test_best_keeper_never_prefers_nan():
    G, D = keeper_networks()
    best = BestKeeper()
    best.offer(4.0, 1, G, D)
    best.offer(math.nan, 2, G, D)
    assert (best.score, best.epoch) == (4.0, 1)


def test_best_keeper_keeps_the_first_offer_when_every_score_is_nan():
    G, D = keeper_networks()
    best = BestKeeper()
    best.offer(math.nan, 1, G, D)
    best.offer(math.nan, 2, G, D)
    assert best.epoch == 1 and math.isnan(best.score) and best.generator and best.discriminator
    G.load_state_dict(best.generator)  # a usable checkpoint


def test_best_keeper_replaces_a_nan_first_offer_by_a_finite_one():
    G, D = keeper_networks()
    best = BestKeeper()
    best.offer(math.nan, 1, G, D)
    best.offer(6.0, 2, G, D)
    assert (best.score, best.epoch) == (6.0, 2)


def test_best_scoring_generator_is_kept():
    cfg = GanConfig(size=28, latent_dim=8, width=2, variant="dcgan")
    images = make_images(np.zeros(4, dtype=np.int64), np.random.default_rng(0))
    scores = iter([5.0, 3.0, 4.0, 9.0])  # epochs 2, 4, 6 and the last, 7
    snapshots = {}

    def score(G):
        assert not G.training  # scored in eval mode
        value = next(scores)
        snapshots[value] = {k: v.clone() for k, v in G.state_dict().items()}
        return value

    seen = []
    G, D, kept = run(
        images,
        cfg,
        settings(epochs=7, sample_every=100, eval_every=2),
        on_epoch=lambda e, m: seen.append((e, m.get("fid_heldout"))),
        score=score,
    )
    assert kept == 4
    assert [s for s in seen if s[1] is not None] == [(2, 5.0), (4, 3.0), (6, 4.0), (7, 9.0)]
    assert [e for e, _ in seen] == list(range(1, 8))
    for k, v in G.state_dict().items():
        assert torch.equal(v, snapshots[3.0][k])
    assert not G.training and not D.training


def test_samples_every_n_epochs_and_at_the_end():
    cfg = GanConfig(size=28, latent_dim=8, width=2, variant="dcgan")
    images = make_images(np.zeros(4, dtype=np.int64), np.random.default_rng(0))
    sampled = []
    run(
        images,
        cfg,
        settings(epochs=5, sample_every=2, eval_every=10),
        on_samples=lambda e, x: sampled.append((e, x.shape, float(x.abs().max()))),
    )
    assert [(e, shape) for e, shape, _ in sampled] == [(e, (64, 1, 28, 28)) for e in (2, 4, 5)]
    assert all(m <= 1 for _, _, m in sampled)


def test_training_is_deterministic():
    cfg = GanConfig(size=28, latent_dim=8, width=2, variant="sn_hinge")
    images = make_images(np.zeros(8, dtype=np.int64), np.random.default_rng(0))

    def once():
        torch.manual_seed(0)  # weight init
        losses = []
        G, _, _ = run(
            images,
            cfg,
            settings(variant=cfg.variant, epochs=2),
            on_epoch=lambda e, m: losses.append(m),
        )
        return G, losses

    (G1, l1), (G2, l2) = once(), once()
    assert l1 == l2
    for k, v in G1.state_dict().items():
        assert torch.equal(v, G2.state_dict()[k]), k


# ---------------------------------------------------------------- diffusion (ddpm)


@pytest.mark.parametrize("size", [28, 64])
def test_ddpm_draws_images_deterministically_from_its_noise_and_trains(size):
    cfg = GanConfig(size=size, latent_dim=size * size, width=8, variant="ddpm", steps=3)
    G = build_generator(cfg).eval()
    assert G.latent_dim == size * size
    z = torch.randn(3, size * size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = G(z)
    assert x.shape == (3, 1, size, size) and x.abs().max() <= 1
    with torch.no_grad():
        torch.testing.assert_close(G(z), x)  # DDIM with eta 0: the noise decides the image
        assert not torch.allclose(G(z.flip(0))[0], x[0])
    images = make_images(np.zeros(6, dtype=np.int64), np.random.default_rng(0), size)
    seen, scores = [], iter([3.0, 1.0])
    G2, D, kept = run(
        images,
        cfg,
        settings(variant="ddpm", epochs=2, batch_size=4),
        score=lambda g: next(scores),
        on_epoch=lambda e, m: seen.append(m),
    )
    assert D is None and kept == 2  # the lower held-out score, at epoch 2
    assert set(seen[0]) == {"loss", "fid_heldout"} and math.isfinite(seen[0]["loss"])
    assert not G2.training


def test_ddpm_checkpoint_round_trip(tmp_path):
    cfg = GanConfig(size=28, latent_dim=784, width=8, variant="ddpm", steps=2)
    G = build_generator(cfg).eval()
    save_gan(tmp_path / "g.safetensors", G, None, cfg, 5, 0)
    loaded, _, meta = load_generator(tmp_path / "g.safetensors")
    assert meta["epoch"] == 5 and meta["config"]["steps"] == 2
    z = torch.randn(2, 784, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(loaded(z), G(z))


def test_every_variant_has_a_name_and_ddpm_refuses_diffaugment(tmp_path):
    assert all(GENERATORS.get(name).title for name in GENERATORS.names())
    with pytest.raises(ParamsError, match="ddpm has no discriminator"):
        params_with(tmp_path, gan={"variant": "ddpm", "diffaugment": ["color"]})


@pytest.mark.parametrize("variant", CONDITIONAL)
@pytest.mark.parametrize("size", [28, 64, 128, 224])
def test_conditional_generators_train_on_both_classes_and_draw_the_asked_one(
    tmp_path, size, variant
):
    """One step of the shared training loop on images of both classes, then the checkpoint
    round trip and the drawing code synthesis uses, at every image size."""
    diffusion = "diffusion" in GENERATORS.get(variant).tags
    latent = size * size if diffusion else 8
    cfg = GanConfig(size, latent, 8 if diffusion else 2, variant, steps=1, classes=2)
    labels = np.array([0, 1, 1, 1], dtype=np.int64)
    images = make_images(labels, np.random.default_rng(0), size)
    grids = []
    G, D, kept = run(
        images,
        cfg,
        settings(variant=variant),
        labels=labels,
        on_samples=lambda e, s: grids.append(s.shape),
    )
    assert kept == 1 and grids == [(64, 1, size, size)]
    save_gan(tmp_path / "g.safetensors", G, D, cfg, kept, label=0)
    loaded, transform, meta = load_generator(tmp_path / "g.safetensors")
    assert loaded.classes == 2 and meta["label"] == 0
    drawn = draw(loaded, transform, 3, label=0, batch_size=2, generator=torch.Generator())
    assert drawn.shape == (3, size, size) and drawn.dtype == np.uint8
    with pytest.raises(ValueError, match="conditional generator draws the class"):
        draw(loaded, transform, 1, batch_size=2, generator=torch.Generator())


def test_a_conditional_generator_needs_labels_and_an_unconditional_one_refuses_them():
    images = make_images(np.zeros(4, dtype=np.int64), np.random.default_rng(0), 28)
    with pytest.raises(ValueError, match="needs labels"):
        run(images, GanConfig(28, 8, 2, "cgan", classes=2), settings(variant="cgan"))
    with pytest.raises(ValueError, match="takes no labels"):
        run(images, GanConfig(28, 8, 2, "dcgan"), settings(), labels=np.zeros(4, dtype=int))


@pytest.mark.parametrize("variant", ["dcgan", "cgan"])
def test_ema_decay_0_keeps_the_raw_weights_and_a_decay_averages_them(variant, monkeypatch):
    """The kept generator is the EMA copy: with decay 0 exactly the weights the last step
    trained, with a decay an average that differs from them."""
    last_raw = {}

    class Spy(train_module.EMA):
        def update(self):
            super().update()
            last_raw.update({k: v.clone() for k, v in self.net.state_dict().items()})

    monkeypatch.setattr(train_module, "EMA", Spy)
    classes = 2 if variant == "cgan" else 0
    labels = np.array([0, 1] * 4 if classes else [0] * 8, dtype=np.int64)
    images = make_images(labels, np.random.default_rng(0), 28)
    cfg = GanConfig(28, 8, 2, variant, classes=classes)
    for decay, same in ((0.0, True), (0.9, False)):
        s = settings(variant=variant, ema=decay, epochs=3, eval_every=3)
        G, _, kept = run(images, cfg, s, labels=labels if classes else None)
        weights = {k: v for k, v in G.state_dict().items() if v.is_floating_point()}
        assert kept == 3
        assert all(torch.equal(v, last_raw[k]) for k, v in weights.items()) is same
