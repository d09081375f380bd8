"""README's results table and params table say what the committed files say."""

import json
import re

import pytest
import yaml

from pneumogan.report.markdown import replace_block, results_table
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_results_block_is_rendered_from_committed_metrics():
    scores = json.loads((ROOT / "metrics/eval.json").read_text())
    level = yaml.safe_load((ROOT / "params.yaml").read_text())["evaluate"]["ci_level"]
    block = README.split("<!-- results:begin -->\n")[1].split("<!-- results:end -->")[0]
    assert block == results_table(scores, level), "run: uv run python scripts/update_readme.py"


def test_replace_block():
    text = "a\n<!-- x:begin -->\nold\n<!-- x:end -->\nb"
    assert replace_block(text, "x", "new\n") == "a\n<!-- x:begin -->\nnew\n<!-- x:end -->\nb"
    with pytest.raises(ValueError, match="no <!-- y:begin -->"):
        replace_block(text, "y", "z")


def same(value, text: str) -> bool:
    if value is None:
        return text == "null"
    if isinstance(value, bool):
        return text == str(value).lower()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(text) == value
    if isinstance(value, list):
        return text == f"[{', '.join(map(str, value))}]"
    return str(value) == text.replace("\\|", "|")  # a table cell escapes its pipes


def test_params_table_defaults_match_params_yaml():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    section = README.split("## Params")[1].split("\n## ")[0]
    rows = re.findall(r"^\| (`[^|]+`) \| ((?:[^|\\]|\\.)+) \|", section, flags=re.M)
    seen = set()
    for keys, default in rows:
        names = re.findall(r"`([\w.]+)`", keys)
        one = len(names) == 1
        values = [default.strip()] if one else [v.strip() for v in default.split(",")]
        values = values * len(names) if len(values) == 1 else values
        for name, text in zip(names, values, strict=True):
            node = params
            for part in name.split("."):
                node = node[part]
            assert same(node, text), (name, node, text)
            seen.add(name)
    flat = {
        f"{k}.{kk}" if isinstance(v, dict) else k
        for k, v in params.items()
        for kk in (v if isinstance(v, dict) else [None])
    }
    assert seen == flat, f"params missing from README: {flat - seen}"


def test_model_card_is_rendered_from_committed_metrics():
    import importlib.util

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
