"""The operating threshold of a prediction (the one given, or the one `evaluate` scored), and
the call it makes once the input gate has had its say."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pneumogan.core.choices import LABELS
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


# ---- the input gate's part in a call ---------------------------------------------------

FLAGGED, PASSED, ABSENT = "flagged", "pass", "absent"  # what the gate said of an image
NOT_AN_XRAY = "does not look like the chest X-rays the model learned from"


def call(p: float, threshold: float, flagged: bool | None) -> str | None:
    """The label at `threshold`, or None (no call) for an image the gate flagged: a label
    would be a confident answer to a question the model was never trained on."""
    if flagged:
        return None
    return LABELS[int(p >= threshold)]


def gate_word(flagged: bool | None) -> str:
    """`flagged`, `pass`, or `absent` for a model without a gate."""
    if flagged is None:
        return ABSENT
    return FLAGGED if flagged else PASSED


def gate_line(gate_threshold: float | None) -> str:
    """One line on the gate in use, for the top of a table."""
    if gate_threshold is None:
        return "gate: absent (a model older than the input gate: every image gets a call)"
    return (
        f"gate: OOD score above {gate_threshold:.4g} is flagged: the image {NOT_AN_XRAY}, "
        "and gets no call"
    )
