"""Rewrite README.md's results table from the committed metrics/eval.json.

uv run python scripts/update_readme.py
"""

import json
from pathlib import Path

from pneumogan.report import replace_block, results_table

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    scores = json.loads((ROOT / "metrics/eval.json").read_text())
    readme = ROOT / "README.md"
    readme.write_text(replace_block(readme.read_text(), "results", results_table(scores)))
    print(results_table(scores))
