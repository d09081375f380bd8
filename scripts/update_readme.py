"""Rewrite README.md's results table from the committed metrics/eval.json.

uv run python scripts/update_readme.py
"""

import json
from pathlib import Path

import yaml

from pneumogan.report.markdown import replace_block, results_table

ROOT = Path(__file__).resolve().parents[1]


def table() -> str:
    scores = json.loads((ROOT / "metrics/eval.json").read_text())
    level = yaml.safe_load((ROOT / "params.yaml").read_text())["evaluate"]["ci_level"]
    return results_table(scores, level)


if __name__ == "__main__":
    readme = ROOT / "README.md"
    readme.write_text(replace_block(readme.read_text(), "results", table()))
    print(table())
