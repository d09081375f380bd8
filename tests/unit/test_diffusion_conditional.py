"""The class-conditional diffusion generator: classifier-free guidance, label dropout, EMA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pneumogan.generate.nets  # noqa: F401 (registers the variants that gan.variant names)
from pneumogan.core.params import GanParams
from pneumogan.generate import diffusion
from pneumogan.generate.diffusion import DiffusionGenerator, train_diffusion
from tests.conftest import make_images, tiny_params

SIZE = 28


def gan_params(**changes) -> GanParams:
    """The tiny params' `gan` section for a diffusion model, with some knobs changed."""
    base = dict(variant="ddpm", epochs=1, batch_size=2, lr=1e-3, sample_every=1, eval_every=1)
    return GanParams.model_validate({**tiny_params()["gan"], **base, **changes})


def conditional(size: int = SIZE, steps: int = 2, guidance: float = 1.0) -> DiffusionGenerator:
    """A width-8 two-class net with seeded weights (untrained, yet its labels already count)."""
    torch.manual_seed(0)
    return DiffusionGenerator(size, 8, steps, classes=2, guidance=guidance).eval()


def noise(n: int, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, size * size, generator=torch.Generator().manual_seed(seed))


def by_hand(G: DiffusionGenerator, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DDIM through the conditional UNet with labels `y`, no guidance: what scale 1 must be."""
    _, scheduler = diffusion._schedulers()
    scheduler.set_timesteps(G.steps)
    x = z.view(z.shape[0], 1, G.size, G.size)
    for t in scheduler.timesteps:
        eps = G.noise_prediction(x, t.expand(x.shape[0]), y)
        x = scheduler.step(eps, t, x, eta=0.0).prev_sample
    return x.clamp(-1, 1)


def train(images, labels, G, gan, **kwargs):
    kwargs.setdefault("score", lambda g: 0.0)
    return train_diffusion(
        images,
        G,
        gan,
        labels=labels,
        generator=torch.Generator().manual_seed(0),
        fixed_z=noise(4, G.size, seed=1),
        device=torch.device("cpu"),
        **kwargs,
    )


def tiny_set(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n) % 2
    return make_images(labels, np.random.default_rng(0), SIZE), labels


@torch.no_grad()
def test_guidance_zero_is_the_null_label_and_one_the_conditional_model():
    G, z, y = conditional(), noise(2), torch.tensor([0, 1])
    null = torch.full_like(y, G.null_label)
    G.guidance = 1.0
    conditional_only = G(z, y)
    torch.testing.assert_close(conditional_only, by_hand(G, z, y), rtol=0, atol=0)
    unconditional = G(z, null)
    G.guidance = 0.0
    torch.testing.assert_close(G(z, y), unconditional, rtol=0, atol=0)
    torch.testing.assert_close(G(z, 1 - y), unconditional, rtol=0, atol=0)  # y is ignored
    G.guidance = 2.0
    guided = G(z, y)
    assert not torch.allclose(guided, conditional_only)
    assert not torch.allclose(guided, unconditional)
    assert not torch.allclose(conditional_only, unconditional)


@torch.no_grad()
def test_guidance_above_one_mixes_both_predictions_in_one_batched_call(monkeypatch):
    G, z, y = conditional(steps=1, guidance=3.0), noise(2), torch.tensor([1, 0])
    calls = []
    real = G.noise_prediction
    monkeypatch.setattr(
        G, "noise_prediction", lambda x, t, y=None: calls.append(y) or real(x, t, y)
    )
    x = G(z, y)
    assert len(calls) == 1 and calls[0].tolist() == [1, 0, 2, 2]  # 2N: labels, then null
    # the same mix by two separate calls, by hand
    _, scheduler = diffusion._schedulers()
    scheduler.set_timesteps(1)
    (t,) = scheduler.timesteps
    xt, tt = z.view(2, 1, SIZE, SIZE), t.expand(2)
    eps_y, eps_null = real(xt, tt, y), real(xt, tt, torch.full_like(y, 2))
    eps = eps_null + 3.0 * (eps_y - eps_null)
    expected = scheduler.step(eps, t, xt, eta=0.0).prev_sample.clamp(-1, 1)
    torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_labels_change_the_image_drawn_from_the_same_noise():
    G, z = conditional(), noise(1).expand(2, -1)
    x = G(z, torch.tensor([0, 1]))
    assert not torch.allclose(x[0], x[1])
    torch.testing.assert_close(G(z[:1], torch.tensor([0])), x[:1])  # and a label decides it


@torch.no_grad()
def test_labels_are_required_exactly_when_conditional():
    z = noise(2)
    with pytest.raises(ValueError, match="needs y"):
        conditional()(z)
    with pytest.raises(ValueError, match="one label per z"):
        conditional()(z, torch.tensor([0]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        conditional()(z, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="without labels"):
        DiffusionGenerator(SIZE, 8, 1)(z, torch.tensor([0, 1]))
    images, labels = tiny_set(4)
    with pytest.raises(ValueError, match="needs labels"):
        train(images, None, conditional(), gan_params())
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        train(images, labels[:3], conditional(), gan_params())
    with pytest.raises(ValueError, match="unconditional"):
        train(images, labels, DiffusionGenerator(SIZE, 8, 1), gan_params())


@pytest.mark.parametrize("size", [28, 64, 128, 224])
def test_conditional_net_builds_and_draws_at_every_size(size):
    G = DiffusionGenerator(size, 8, 1, classes=2, guidance=1.5).eval()
    assert (G.size, G.latent_dim, G.steps, G.classes, G.guidance) == (size, size**2, 1, 2, 1.5)
    with torch.no_grad():
        x = G(noise(1, size), torch.tensor([1]))
    assert x.shape == (1, 1, size, size) and x.abs().max() <= 1


def test_one_epoch_with_labels_trains_a_conditional_generator():
    images, labels = tiny_set()
    G = conditional(guidance=1.5)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    seen, grids, scored = [], [], []

    def score(g):
        scored.append(g)
        return float(g(noise(2), torch.tensor([0, 1])).mean())  # the caller picks the class

    G2, kept = train(
        images,
        labels,
        G,
        gan_params(ema=0.9),
        score=score,
        on_epoch=lambda e, m: seen.append(m),
        on_samples=lambda e, x: grids.append(x),
    )
    assert kept == 1 and G2 is G and not G2.training and G2.classes == 2
    assert np.isfinite(seen[0]["loss"]) and set(seen[0]) == {"loss", "fid_heldout"}
    assert scored[0] is not G  # scored on the EMA copy
    assert any(not torch.equal(v, before[k]) for k, v in G2.state_dict().items())
    assert grids[0].shape == (4, 1, SIZE, SIZE) and grids[0].abs().max() <= 1
    with torch.no_grad():
        x = G2(noise(3), torch.tensor([0, 1, 0]))
        # the grid cycles labels 0, 1, 0, 1 over fixed_z
        torch.testing.assert_close(grids[0], G2(noise(4, seed=1), torch.tensor([0, 1, 0, 1])))
    assert x.shape == (3, 1, SIZE, SIZE) and x.abs().max() <= 1


@pytest.mark.parametrize("decay", [0.0, 0.9])
def test_the_returned_weights_are_the_ema_ones_and_raw_when_decay_is_zero(decay):
    images, labels = tiny_set()  # 8 images in batches of 2: 4 optimiser steps
    G = conditional()
    raw = {}
    # after the last epoch's steps, before the keeper's weights are loaded, G holds raw weights
    on_epoch = lambda e, m: raw.update({k: v.clone() for k, v in G.state_dict().items()})  # noqa: E731
    G2, _ = train(images, labels, G, gan_params(ema=decay), on_epoch=on_epoch)
    same = all(torch.equal(v, raw[k]) for k, v in G2.state_dict().items())
    assert same == (decay == 0.0)


def test_label_dropout_shows_the_net_only_null_labels_when_certain(monkeypatch):
    monkeypatch.setattr(diffusion, "COND_DROPOUT", 1.0)
    images, labels = tiny_set(4)
    G, seen = conditional(), []
    real = G.noise_prediction

    def spy(x, t, y=None):
        if torch.is_grad_enabled():  # training steps, not the EMA copy's draws
            seen.append(y.clone())
        return real(x, t, y)

    monkeypatch.setattr(G, "noise_prediction", spy)
    train(images, labels, G, gan_params())
    assert len(seen) == 2 and all((y == G.null_label).all() for y in seen)
