"""MODEL_CARD.md says what the committed files say; the block helper replaces only its block."""

import importlib.util

import pytest

from pneumogan.report.markdown import replace_block
from tests.conftest import ROOT


def test_model_card_is_rendered_from_committed_metrics():
    spec = importlib.util.spec_from_file_location("model_card", ROOT / "scripts/model_card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    card = (ROOT / "MODEL_CARD.md").read_text()
    assert card == module.card(), "run: uv run python scripts/model_card.py"
    assert "Not for diagnosis" in card.replace("**", "")


def test_model_card_describes_the_errors_it_finds():
    from pneumogan.serve.model_card import _kind

    assert "false alarms" in _kind({"fp": 9, "fn": 1})
    assert "missed pneumonia" in _kind({"fp": 1, "fn": 9})
    assert "as often" in _kind({"fp": 2, "fn": 2})


def test_replace_block():
    text = "a\n<!-- x:begin -->\nold\n<!-- x:end -->\nb"
    assert replace_block(text, "x", "new\n") == "a\n<!-- x:begin -->\nnew\n<!-- x:end -->\nb"
    with pytest.raises(ValueError, match="no <!-- y:begin -->"):
        replace_block(text, "y", "z")
