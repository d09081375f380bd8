"""ProGAN: shapes at every size and growth point, the growth schedule, continuous fade-ins,
equalised learning rate, the minibatch stddev layer, conditioning, and one WGAN-GP step."""

import math

import pytest
import torch
from torch.nn import functional as F

from pneumogan.generate.config import GanConfig, levels
from pneumogan.generate.progressive import (
    EqualizedConv2d,
    EqualizedLinear,
    ProgressiveDiscriminator,
    ProgressiveGenerator,
    growth,
    minibatch_stddev,
)


def nets(size=28, classes=0, width=2, latent_dim=8, seed=0):
    torch.manual_seed(seed)
    cfg = GanConfig(
        size=size, latent_dim=latent_dim, width=width, variant="progan", classes=classes
    )
    return ProgressiveGenerator(cfg), ProgressiveDiscriminator(cfg)


def labels(classes, n):
    return torch.arange(n) % classes if classes else None


@pytest.mark.parametrize("size", [28, 64, 128, 224])
@pytest.mark.parametrize("classes", [0, 2])
def test_shapes_at_every_size_and_growth_point(size, classes):
    G, D = nets(size, classes, width=1 if size == 224 else 2)
    z, y = torch.randn(2, 8), labels(classes, 2)
    with torch.no_grad():
        for t in (0.0, 0.3, 1.0):
            G.grow(t)
            D.grow(t)
            x = G(z, y)
            assert x.shape == (2, 1, size, size)  # always full size
            assert x.abs().max() <= 1.0
            assert D(x, y).shape == (2,)
    assert (G.latent_dim, G.size, G.classes) == (8, size, classes)


def test_fresh_nets_are_at_full_resolution():
    G, D = nets()
    assert (G.level, G.alpha) == (levels(28)[1], 1.0)
    assert (D.level, D.alpha) == (levels(28)[1], 1.0)


def test_latent_may_be_4d():
    G, _ = nets()
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(G(z), G(z.view(2, 8, 1, 1)))


def test_growth_schedule():
    assert growth(0.0, 2) == (0, 1.0)  # start: the lowest resolution, nothing to fade
    assert growth(0.2, 2) == (0, 1.0)
    assert growth(1 / 3, 2) == (1, 0.0)  # start of the first fade
    level, alpha = growth(0.45, 4)  # phases of 0.2: middle of level 2's fade
    assert level == 2 and alpha == pytest.approx(0.5)
    level, alpha = growth(0.5, 2)  # end of level 1's fade: stable from here
    assert level == 1 and alpha == pytest.approx(1.0)
    assert growth(0.6, 2) == (1, 1.0)
    assert growth(0.99, 2) == (2, 1.0)
    assert growth(1.0, 2) == (2, 1.0)
    assert growth(1.5, 5) == (5, 1.0)


@pytest.mark.parametrize("size", [28, 64])
@pytest.mark.parametrize("classes", [0, 2])
def test_fade_in_starts_where_the_level_below_ended(size, classes):
    G, D = nets(size, classes)
    _, k = levels(size)
    z, y = torch.randn(4, 8), labels(classes, 4)
    x = torch.rand(4, 1, size, size) * 2 - 1
    with torch.no_grad():
        for level in range(1, k + 1):
            start = level / (k + 1)  # first instant of this level: alpha 0
            end = start - 0.25 / (k + 1)  # the last quarter of the level below: stable
            for net in (G, D):
                net.grow(end)
                assert (net.level, net.alpha) == (level - 1, 1.0)
            before, logits_before = G(z, y), D(x, y)
            for net in (G, D):
                net.grow(start)
                assert (net.level, net.alpha) == (level, 0.0)
            torch.testing.assert_close(G(z, y), before)
            torch.testing.assert_close(D(x, y), logits_before)
            G.grow(start + 0.25 / (k + 1))  # mid-fade: the new resolution shows
            assert not torch.allclose(G(z, y), before)


def test_low_level_output_is_an_upsampled_low_resolution_image():
    G, _ = nets(28)  # 7 → 14 → 28
    z = torch.randn(2, 8)
    with torch.no_grad():
        for t, block in ((0.0, 4), (0.4, 2), (0.6, 2)):
            G.grow(t)
            x = G(z)
            res = 28 // block
            tiles = x.view(2, 1, res, block, res, block)
            assert torch.equal(tiles, tiles[:, :, :, :1, :, :1].expand_as(tiles))
        G.grow(1.0)
        x = G(z)
        assert not torch.equal(x[..., ::2, ::2], x[..., 1::2, 1::2])  # full size: real detail


def test_equalized_learning_rate():
    torch.manual_seed(0)
    conv = EqualizedConv2d(64, 32, 3, 1)
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.03)
    assert conv.scale == pytest.approx(math.sqrt(2 / (64 * 9)))
    assert torch.equal(conv.bias, torch.zeros(32))
    x = torch.randn(2, 64, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * conv.scale, padding=1))
    linear = EqualizedLinear(256, 128)
    assert linear.weight.std().item() == pytest.approx(1.0, abs=0.03)
    assert linear.scale == pytest.approx(math.sqrt(2 / 256))
    v = torch.randn(3, 256)
    torch.testing.assert_close(linear(v), v @ (linear.weight * linear.scale).T)
    assert EqualizedConv2d(8, 1, 1, gain=1.0).scale == pytest.approx(1 / math.sqrt(8))


def test_minibatch_stddev_by_hand():
    x = torch.arange(4 * 2 * 2 * 2, dtype=torch.float32).view(4, 2, 2, 2) ** 1.5
    out = minibatch_stddev(x, group_size=2)
    assert out.shape == (4, 3, 2, 2)
    assert torch.equal(out[:, :2], x)
    for group in ((0, 1), (2, 3)):
        a, b = x[group[0]], x[group[1]]
        mean = (a + b) / 2
        std = torch.sqrt(((a - mean) ** 2 + (b - mean) ** 2) / 2 + 1e-8)  # population std
        for i in group:
            torch.testing.assert_close(out[i, 2], std.mean().expand(2, 2))
    # a group size that does not divide the batch: the whole batch is one group
    ragged = minibatch_stddev(x[:3], group_size=2)
    expected = torch.sqrt(x[:3].var(dim=0, unbiased=False) + 1e-8).mean()
    torch.testing.assert_close(ragged[:, 2], expected.expand(3, 2, 2))


def test_conditioning():
    G, D = nets(classes=2)
    z = torch.randn(1, 8).expand(2, 8)
    y = torch.tensor([0, 1])
    with torch.no_grad():
        x = G(z, y)
        assert not torch.allclose(x[0], x[1])
        with pytest.raises(ValueError):
            G(z)
        with pytest.raises(ValueError):
            D(x)
    G0, D0 = nets(classes=0)
    with pytest.raises(ValueError):
        G0(z, y)
    with pytest.raises(ValueError):
        D0(x, y)


def test_parameter_counts_are_sane():
    G, D = nets(28, width=32, latent_dim=100)
    assert sum(p.numel() for p in G.parameters()) < 2_000_000
    assert sum(p.numel() for p in D.parameters()) < 2_000_000


def test_one_wgan_gp_step_changes_both_nets():
    G, D = nets(28, classes=2)
    G.grow(0.4)  # level 1, mid-fade: both branches in use
    D.grow(0.4)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99))
    before_g = {n: p.detach().clone() for n, p in G.named_parameters()}
    before_d = {n: p.detach().clone() for n, p in D.named_parameters()}
    real, y = torch.rand(4, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 0, 1])
    z = torch.randn(4, 8)

    fake = G(z, y).detach()
    eps = torch.rand(4, 1, 1, 1)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mixed, y).sum(), mixed, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    d_real = D(real, y)
    loss_d = D(fake, y).mean() - d_real.mean() + 10 * penalty + 1e-3 * (d_real**2).mean()
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()

    loss_g = -D(G(z, y), y).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()

    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    # the layers in use at level 1 moved (the unused level-2 ones get no gradient)
    for net, before, names in (
        (
            G,
            before_g,
            ["embed.weight", "first.linear.weight", "to_rgb.0.weight", "to_rgb.1.weight"],
        ),
        (
            D,
            before_d,
            ["embed.weight", "from_rgb.0.0.weight", "from_rgb.1.0.weight", "linear.weight"],
        ),
    ):
        params = dict(net.named_parameters())
        for name in names:
            assert not torch.equal(params[name], before[name]), name
