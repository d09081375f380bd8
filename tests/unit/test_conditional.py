"""Class-conditional SNGAN: conditional batch norm, G(z, y) and the projection D(x, y)."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pneumogan.generate.conditional import (
    ConditionalBatchNorm2d,
    ConditionalResBlockUp,
    ConditionalResNetG,
    ProjectionD,
)
from pneumogan.generate.config import GanConfig


def config(size: int = 28, **changes) -> GanConfig:
    """A tiny two-class config."""
    base = dict(size=size, latent_dim=8, width=2, variant="resnet_sn", classes=2)
    return GanConfig(**{**base, **changes})


@pytest.mark.parametrize("size", [28, 64, 128, 224])
def test_networks_scale_with_size(size):
    torch.manual_seed(0)
    cfg = config(size)
    G, D = ConditionalResNetG(cfg), ProjectionD(cfg)
    y = torch.tensor([0, 1])
    x = G(torch.randn(2, 8), y)
    assert x.shape == (2, 1, size, size)
    assert x.abs().max() <= 1
    assert D(x, y).shape == (2,)
    assert (G.latent_dim, G.size, G.classes) == (8, size, 2)
    # a latent shaped N×latent×1×1 (as the DCGAN generator takes it) works too
    assert G(torch.randn(2, 8, 1, 1), y).shape == (2, 1, size, size)


def test_conditional_batch_norm_starts_as_plain_batch_norm():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, classes=2)
    x, y = torch.randn(4, 3, 5, 5), torch.tensor([0, 1, 0, 1])
    plain = nn.BatchNorm2d(3, affine=False)
    torch.testing.assert_close(cbn(x, y), plain(x))


def test_conditional_batch_norm_changes_only_the_rows_of_its_class():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, classes=2)
    x, y = torch.randn(4, 3, 5, 5), torch.tensor([0, 1, 0, 1])
    before = cbn(x, y)
    with torch.no_grad():
        cbn.scale.weight[1] = torch.tensor([2.0, 0.5, -1.0])
        cbn.shift.weight[1] = torch.tensor([0.1, -0.2, 0.3])
    after = cbn(x, y)
    torch.testing.assert_close(after[y == 0], before[y == 0])
    expected = before[y == 1] * torch.tensor([2.0, 0.5, -1.0]).view(1, 3, 1, 1)
    expected = expected + torch.tensor([0.1, -0.2, 0.3]).view(1, 3, 1, 1)
    torch.testing.assert_close(after[y == 1], expected)


def test_conditional_block_upsamples():
    torch.manual_seed(0)
    block = ConditionalResBlockUp(4, 2, classes=3)
    assert block(torch.randn(2, 4, 7, 7), torch.tensor([0, 2])).shape == (2, 2, 14, 14)


def test_generator_output_depends_on_the_class():
    torch.manual_seed(0)
    G = ConditionalResNetG(config())
    z = torch.randn(1, 8).repeat(2, 1)  # the same latent, drawn as each class
    y = torch.tensor([0, 1])
    x = G(z, y)
    # fresh embeddings are the identity affine for every class: one image for both
    torch.testing.assert_close(x[0], x[1])
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                m.scale.weight.add_(0.3 * torch.randn_like(m.scale.weight))
                m.shift.weight.add_(0.3 * torch.randn_like(m.shift.weight))
    x = G(z, y)
    assert (x[0] - x[1]).abs().max() > 1e-3


def test_discriminator_depends_on_the_class_through_the_projection():
    torch.manual_seed(0)
    D = ProjectionD(config()).eval()  # eval: spectral norm's power iteration holds still
    x = torch.randn(3, 1, 28, 28)
    y, other = torch.tensor([0, 1, 0]), torch.tensor([1, 0, 0])
    with torch.no_grad():
        gap = D(x, y) - D(x, other)
        h, w = D.features(x), D.embed.weight  # the spectrally normalised embedding
        expected = ((w[y] - w[other]) * h).sum(dim=1)
    torch.testing.assert_close(gap, expected)
    assert gap[:2].abs().min() > 0  # the rows whose label changed score differently
    assert gap[2] == 0


def test_labels_are_required():
    cfg = config()
    G, D = ConditionalResNetG(cfg), ProjectionD(cfg)
    with pytest.raises(ValueError, match="labels"):
        G(torch.randn(2, 8))
    with pytest.raises(ValueError, match="labels"):
        D(torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="shape"):
        G(torch.randn(2, 8), torch.tensor([0, 1, 0]))


@pytest.mark.parametrize("classes", [0, 1])
def test_fewer_than_two_classes_is_refused(classes):
    cfg = config(classes=classes)
    with pytest.raises(ValueError, match="classes"):
        ConditionalResNetG(cfg)
    with pytest.raises(ValueError, match="classes"):
        ProjectionD(cfg)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


def test_one_hinge_step_trains_both_networks_and_the_embeddings():
    torch.manual_seed(0)
    cfg = config()
    G, D = ConditionalResNetG(cfg), ProjectionD(cfg)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.9))
    real, y = torch.rand(4, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 0, 1])
    g_before, d_before = snapshot(G), snapshot(D)

    fake = G(torch.randn(4, 8), y)
    loss_d = F.relu(1 - D(real, y)).mean() + F.relu(1 + D(fake.detach(), y)).mean()
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()

    loss_g = -D(G(torch.randn(4, 8), y), y).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()

    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    assert changed(d_before, D) == set(d_before)  # every D weight, the embedding included
    assert "embed.parametrizations.weight.original" in d_before
    g_changed = changed(g_before, G)
    assert {k for k in g_before if k.endswith(("scale.weight", "shift.weight"))} <= g_changed
    assert {"linear.weight", "out.weight"} <= g_changed
