"""Named random streams: one per purpose, independent, and stable across releases."""

import itertools
import random

import numpy as np
import pytest
import torch

from pneumogan.core import seeds


@pytest.fixture
def restore_global_rng():
    """seed_everything changes process-wide state; put it back for the tests that follow."""
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    yield
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.benchmark = benchmark


def test_spawn_keys_are_never_renumbered():
    """Renumbering a purpose would silently change every result that uses it."""
    assert seeds.PURPOSES == {
        "split": 0,
        "reference_init": 1,
        "reference_train": 2,
        "gan_init": 3,
        "gan_train": 4,
        "gan_fixed_noise": 5,
        "gan_selection_noise": 6,
        "synthesis": 7,
        "quality": 8,
        "fuse": 9,
        "train_init": 10,
        "train": 11,
        "evaluate": 12,
        "carve": 13,
        "eda": 14,
        "synthesis_probe": 15,
        "quality_per_class": 16,
        "evaluate_ood": 17,
    }


def test_same_seed_and_purpose_repeat():
    for purpose in seeds.PURPOSES:
        a = seeds.numpy_rng(42, purpose).integers(1 << 62, size=4)
        b = seeds.numpy_rng(42, purpose).integers(1 << 62, size=4)
        np.testing.assert_array_equal(a, b)
        assert seeds.int_seed(42, purpose) == seeds.int_seed(42, purpose)
        g1, g2 = seeds.torch_generator(42, purpose), seeds.torch_generator(42, purpose)
        assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_streams_for_different_purposes_and_seeds_differ():
    ints = {(s, p): seeds.int_seed(s, p) for s in (0, 1, 42) for p in seeds.PURPOSES}
    assert len(set(ints.values())) == len(ints)
    assert all(0 <= v < 2**63 for v in ints.values())  # fits torch's manual_seed
    draws = {p: tuple(seeds.numpy_rng(42, p).integers(1 << 62, size=2)) for p in seeds.PURPOSES}
    assert len(set(draws.values())) == len(draws)


def test_unknown_purpose_raises_key_error():
    for make in (seeds.sequence, seeds.numpy_rng, seeds.int_seed, seeds.torch_generator):
        with pytest.raises(KeyError, match="unknown random stream 'gan_noise'"):
            make(42, "gan_noise")


@pytest.mark.parametrize("seed", [0, 42])
def test_checkpoint_selection_noise_is_not_synthesis_or_grid_noise(seed):
    """The images that pick the GAN checkpoint must not be the images fuse adds (or the grids)."""
    names = ("gan_selection_noise", "synthesis", "gan_fixed_noise")
    z = {n: torch.randn(256, 8, generator=seeds.torch_generator(seed, n)) for n in names}
    for a, b in itertools.combinations(names, 2):
        assert not torch.equal(z[a], z[b])
        # no row of one stream is a row of another (e.g. the same stream at an offset)
        assert torch.cdist(z[a], z[b]).min().item() > 1e-3, (a, b)


def test_torch_generator_is_on_the_cpu():
    assert seeds.torch_generator(0, "synthesis").device.type == "cpu"


def test_seed_everything_seeds_the_global_generators(restore_global_rng):
    seeds.seed_everything(42, "train_init")
    first = (random.random(), np.random.rand(), torch.rand(3))
    assert torch.are_deterministic_algorithms_enabled()
    seeds.seed_everything(42, "train_init")
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])
    seeds.seed_everything(42, "gan_init")
    assert not torch.equal(torch.rand(3), first[2])
