"""Markdown made from metrics files, never typed by hand: README blocks and reports."""

from __future__ import annotations

import re

ROWS = {
    "accuracy": "accuracy",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "precision": "precision",
    "F1": "f1",
    "balanced accuracy": "balanced_accuracy",
}


def results_table(scores: dict, level: float = 0.95) -> str:
    """Test metrics at the fixed and at the validation-chosen threshold, with intervals."""
    fixed, chosen = scores, scores["at_val_threshold"]
    ci = scores["ci"]

    def interval(key: str) -> str:
        return f"{ci[key]['low']:.3f} – {ci[key]['high']:.3f}" if key in ci else ""

    lines = [
        f"| test metric | threshold {fixed['threshold']:g} | {level:.0%} bootstrap interval "
        f"| validation-chosen threshold ({chosen['threshold']:.3f}) |",
        "|---|---|---|---|",
        f"| AUC | {scores['auc']:.3f} | {interval('auc')} | |",
    ]
    for label, key in ROWS.items():
        lines.append(f"| {label} | {fixed[key]:.3f} | {interval(key)} | {chosen[key]:.3f} |")
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
