"""Markdown made from metrics files, never typed by hand: README blocks and reports."""

from __future__ import annotations

import re

ROWS = {
    "AUC": "auc",
    "accuracy": "accuracy",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "precision": "precision",
    "F1": "f1",
    "balanced accuracy": "balanced_accuracy",
}


def results_table(scores: dict) -> str:
    """Test metrics at the fixed and the validation-chosen threshold, with intervals."""
    vt = scores["val_threshold"]
    level = "95%"
    lines = [
        f"| metric | threshold 0.5 | {level} bootstrap interval | validation threshold "
        f"({vt['threshold']:.3f}) |",
        "|---|---|---|---|",
    ]
    for label, key in ROWS.items():
        ci = scores["ci"].get(key)
        interval = f"{ci['low']:.3f} – {ci['high']:.3f}" if ci else ""
        at_val = "" if key == "auc" else f"{vt[key]:.3f}"
        lines.append(f"| {label} | {scores[key]:.3f} | {interval} | {at_val} |")
    lines.append(f"| Brier score | {scores['brier']:.4f} | | |")
    lines.append(f"| expected calibration error | {scores['ece']:.4f} | | |")
    return "\n".join(lines) + "\n"


def replace_block(text: str, name: str, body: str) -> str:
    """Replace what stands between <!-- name:begin --> and <!-- name:end --> in `text`."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise ValueError(f"no {begin} ... {end} block")
    return pattern.sub(lambda _: f"{begin}\n{body}{end}", text)
