"""What the MLflow model takes (`pixels`) and how it refuses the rest (`PixelsRefused`)."""

import json

import numpy as np
import pandas as pd
import pytest

from pneumogan.serve.mlflow_model import PixelsRefused, pixels

WANT = "send 8-bit grayscale images, integers 0..255, shape (N, 4, 4)"


def test_a_refusal_keeps_its_message_when_the_scoring_server_rewrites_it():
    refused = PixelsRefused("pixels must be in 0..255")
    refused.message = "Failed to predict data '[[[1 2 3]]]'. \nError: pixels must be in 0..255"
    answer = json.loads(refused.serialize_as_json())
    assert answer["message"] == "pixels must be in 0..255" == str(refused)
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert refused.get_http_status_code() == 400


def test_uint8_passes_as_it_is_and_other_integers_become_uint8():
    images = np.arange(32, dtype=np.uint8).reshape(2, 4, 4)
    assert pixels(images, 4) is images
    for sent in (images.astype(np.int64), images.astype(np.uint16), images.tolist()):
        got = pixels(sent, 4)
        assert got.dtype == np.uint8 and np.array_equal(got, images)


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (np.full((1, 4, 4), 0.5), f"pixels must be integers, not floats: {WANT}"),
        (np.full((1, 4, 4), 7.0, np.float32), f"pixels must be integers, not floats: {WANT}"),
        (np.ones((1, 4, 4), bool), f"pixels must be integers, not bool: {WANT}"),
        ([[["a"] * 4] * 4], f"pixels must be integers, not str32: {WANT}"),
        (np.full((1, 4, 4), 256), f"pixels must be in 0..255: {WANT}"),
        (np.full((1, 4, 4), -1), f"pixels must be in 0..255: {WANT}"),
        (np.zeros((2, 5, 4), np.uint8), "expected images of shape (N, 4, 4), received (2, 5, 4)"),
        (np.zeros((4, 4), np.uint8), "expected images of shape (N, 4, 4), received (4, 4)"),
        ([], "expected images of shape (N, 4, 4), received (0,)"),
        (
            pd.DataFrame(np.zeros((2, 16), int)),
            "expected images of shape (N, 4, 4), received (2, 16)",
        ),
        ([[[0] * 4] * 4, [[0] * 3] * 4], f"images of unequal sizes: {WANT}"),
    ],
)
def test_anything_else_is_refused_saying_what_to_send(sent, message):
    with pytest.raises(PixelsRefused) as refused:
        pixels(sent, 4)
    assert refused.value.message == message
