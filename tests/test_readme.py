"""README's results table and params table say what the committed files say."""

import json
import re

import yaml

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
NAMES = {
    "AUC": "auc",
    "accuracy": "accuracy",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "precision": "precision",
    "F1": "f1",
    "balanced accuracy": "balanced_accuracy",
}


def test_results_table_matches_committed_metrics():
    block = README.split("<!-- results:begin -->")[1].split("<!-- results:end -->")[0]
    rows = dict(re.findall(r"^\| ([\w ]+?) \| ([0-9.]+) \|$", block, flags=re.M))
    scores = json.loads((ROOT / "metrics/eval.json").read_text())
    assert set(rows) == set(NAMES)
    for label, key in NAMES.items():
        assert rows[label] == f"{scores[key]:.3f}", label


def same(value, text: str) -> bool:
    if value is None:
        return text == "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(text) == value
    return str(value) == text


def test_params_table_defaults_match_params_yaml():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    section = README.split("## Params")[1].split("\n## ")[0]
    rows = re.findall(r"^\| (`[^|]+`) \| ([^|]+) \|", section, flags=re.M)
    seen = set()
    for keys, default in rows:
        names = re.findall(r"`([\w.]+)`", keys)
        values = [v.strip() for v in default.split(",")]
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
