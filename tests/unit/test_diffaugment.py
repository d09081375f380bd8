"""DiffAugment: each policy does what it says, is differentiable, and draws from the generator."""

import pytest
import torch

from pneumogan.core.params import ParamsError
from pneumogan.generate.diffaugment import cutout, diff_augment, translation


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_translation_moves_by_whole_pixels_and_pads_with_zero():
    x = torch.rand(32, 1, 16, 16, generator=g()) + 1  # all pixels > 0: padding shows as 0
    out = translation(x, g(1))
    for a, b in zip(x, out, strict=True):
        # find the shift: some (dy, dx) within ±2 px makes the overlap match exactly
        hits = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(torch.roll(a, (dy, dx), (1, 2))[:, 2:-2, 2:-2], b[:, 2:-2, 2:-2])
        ]
        assert hits, "not an integer shift of up to 1/8 of the side"
        dy, dx = hits[0]
        assert int((b == 0).sum()) == 16 * 16 - (16 - abs(dy)) * (16 - abs(dx))
    assert (out == 0).any() and not torch.equal(out, x)


def test_cutout_zeroes_one_square_of_at_most_half_the_side():
    x = torch.ones(64, 1, 16, 16)
    out = cutout(x, g(2))
    zeros = (out == 0).sum((1, 2, 3))
    assert (zeros <= 64).all() and (zeros > 0).all() and (zeros == 64).any()
    for img in out[:, 0]:
        rows, cols = torch.nonzero(img == 0, as_tuple=True)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(box) == rows.numel()  # the zeros form one rectangle (a square, clipped)


def test_policies_are_differentiable_and_follow_the_generator():
    x = torch.rand(8, 1, 28, 28, generator=g(3), requires_grad=True)
    policies = ("color", "translation", "cutout")
    out = diff_augment(x, policies, g(4))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.testing.assert_close(diff_augment(x, policies, g(4)), out)
    assert not torch.allclose(diff_augment(x, policies, g(5)), out)
    with pytest.raises(ValueError, match="unknown DiffAugment policy 'flip'"):
        diff_augment(x, ("flip",), g())


def test_params_accept_policies_and_refuse_unknown_or_repeated_ones(tmp_path):
    from tests.unit.test_params import params_with

    chosen = params_with(tmp_path, gan={"diffaugment": ["color", "cutout"]})
    assert chosen.gan.diffaugment == ("color", "cutout")
    with pytest.raises(ParamsError, match=r"gan.diffaugment\[0\] = 'flip'"):
        params_with(tmp_path, gan={"diffaugment": ["flip"]})
    with pytest.raises(ParamsError, match="distinct"):
        params_with(tmp_path, gan={"diffaugment": ["color", "color"]})
