"""The one fixed map between uint8 pixels and network values, both ways."""

import numpy as np
import pytest
import torch

from pneumogan.core.errors import DataError
from pneumogan.core.transforms import ImageTransform

T = ImageTransform(size=2)


def test_encode_maps_the_pixel_range_to_minus_one_one():
    x = T.encode(np.array([[[0, 255], [0, 255]]], dtype=np.uint8))
    assert x.dtype == torch.float32 and x.shape == (1, 1, 2, 2)
    assert x.flatten().tolist() == [-1.0, 1.0, -1.0, 1.0]


def test_decode_inverts_encode_for_every_pixel_value():
    every = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)
    t = ImageTransform(size=8)
    x = t.encode(every)
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert bool((x.flatten().diff() > 0).all())  # strictly increasing, one value per pixel
    back = t.decode(x)
    assert back.dtype == np.uint8 and back.shape == (4, 8, 8)
    np.testing.assert_array_equal(back, every)


def test_uint8_map_is_fixed_not_stretched():
    x = torch.tensor([[-1.0, 0.0], [0.5, 1.0]]).view(1, 1, 2, 2) * 0.1  # low-contrast image
    out = T.decode(x)
    assert out.dtype == np.uint8
    assert out.tolist() == [[[115, 128], [134, 140]]]  # not stretched to 0..255


def test_decode_is_per_pixel_not_per_image():
    """The same network value gives the same pixel whatever else is in the batch."""
    low = torch.full((1, 1, 2, 2), 0.05)
    both = torch.cat([low, torch.linspace(-1, 1, 4).view(1, 1, 2, 2)])
    np.testing.assert_array_equal(T.decode(low)[0], T.decode(both)[0])


def test_decode_clamps_values_outside_the_range():
    out = T.decode(torch.tensor([-3.0, -1.01, 1.01, 7.0]).view(1, 1, 2, 2))
    assert out.flatten().tolist() == [0, 0, 255, 255]


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((3, 4, 4), np.uint8),  # other size
        np.zeros((3, 2, 4), np.uint8),  # not square
        np.zeros((3, 1, 2, 2), np.uint8),  # a channel axis
        np.zeros((2, 2), np.uint8),  # one image without the batch axis
    ],
)
def test_wrong_image_shape_is_a_data_error(images):
    with pytest.raises(DataError, match="network built for 2×2 px"):
        T.encode(images)


def test_other_ranges_and_dict_round_trip():
    t = ImageTransform(size=2, low=0.0, high=1.0)
    assert t.encode(np.array([[[0, 255], [51, 255]]], np.uint8)).flatten().tolist() == [
        0.0,
        1.0,
        pytest.approx(0.2),
        1.0,
    ]
    assert ImageTransform.from_dict(t.to_dict()) == t
    assert t.to_dict() == {"size": 2, "low": 0.0, "high": 1.0}
