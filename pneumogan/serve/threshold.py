"""The operating threshold of a prediction: the one given, or the one `evaluate` scored."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pneumogan.core.errors import DataError


def parse_threshold(text: str) -> float | str:
    if text == "val":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number in (0, 1] or 'val'") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a number in (0, 1] or 'val'")
    return value


def choose_threshold(given: float | str | None, metrics: Path) -> tuple[float, str]:
    """(threshold, where it came from): the option, or what `evaluate` scored."""
    if isinstance(given, float):
        return given, "--threshold"
    try:
        scores = json.loads(metrics.read_text())
        if given == "val":
            return float(scores["at_val_threshold"]["threshold"]), f"{metrics}: validation-chosen"
        return float(scores["threshold"]), f"{metrics}: evaluate.threshold"
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(
            f"{metrics}: no evaluated threshold ({type(err).__name__}: {err}); run the "
            "pipeline (dvc repro) or pass --threshold"
        ) from None
