"""Markdown made from metrics files, never typed by hand: README blocks and reports."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

ROWS = {
    "accuracy": "accuracy",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "precision": "precision",
    "F1": "f1",
    "balanced accuracy": "balanced_accuracy",
}


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    """A GitHub-flavoured pipe table of cells already formatted as text (pandas' to_markdown,
    through tabulate), one `align` ("left", "right", "center") per column; no final newline.
    Cells are kept as given: tabulate neither parses nor reformats numbers."""
    frame = pd.DataFrame([list(r) for r in rows], columns=list(header), dtype=object)
    return frame.to_markdown(
        index=False, tablefmt="pipe", colalign=tuple(align), disable_numparse=True
    )


def results_table(scores: dict, level: float = 0.95) -> str:
    """Test metrics at the fixed and at the validation-chosen threshold, with intervals."""
    fixed, chosen = scores, scores["at_val_threshold"]
    ci = scores["ci"]

    def interval(key: str) -> str:
        return f"{ci[key]['low']:.3f} – {ci[key]['high']:.3f}" if key in ci else ""

    header = [
        "test metric",
        f"threshold {fixed['threshold']:g}",
        f"{level:.0%} bootstrap interval",
        f"validation-chosen threshold ({chosen['threshold']:.3f})",
    ]
    rows = [
        ["AUC", f"{scores['auc']:.3f}", interval("auc"), ""],
        *(
            [label, f"{fixed[key]:.3f}", interval(key), f"{chosen[key]:.3f}"]
            for label, key in ROWS.items()
        ),
        ["Brier score", f"{scores['brier']:.4f}", "", ""],
        ["expected calibration error", f"{scores['ece']:.4f}", "", ""],
    ]
    return table(header, rows, ["left", "right", "right", "right"]) + "\n"


def replace_block(text: str, name: str, body: str) -> str:
    """Replace what stands between <!-- name:begin --> and <!-- name:end --> in `text`."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise ValueError(f"no {begin} ... {end} block")
    return pattern.sub(lambda _: f"{begin}\n{body}{end}", text)
