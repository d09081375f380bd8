"""Stage explain: Grad-CAM overlays of the most confident right and wrong test calls per class."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan.classify.checkpoint import load_classifier
from pneumogan.core import stage, tracking
from pneumogan.core.params import StageParams, load_slice
from pneumogan.data.contract import load_split
from pneumogan.evaluate.explain import explain_examples
from pneumogan.report import figures

log = logging.getLogger("pneumogan.explain")


def run(args: argparse.Namespace, cfg: StageParams) -> None:
    clf = load_classifier(args.model)
    images, labels = load_split(args.test, size=clf.transform.size)
    threshold = cfg.evaluate.threshold
    with tracking.stage_run("explain", cfg) as run:
        p, groups, overlays = explain_examples(
            clf, images, labels, threshold, cfg.explain.per_group
        )
        figures.explanation_grid(args.out, groups, overlays, labels, p, threshold)
        run.log_artifact(args.out)
        log.info(
            "Grad-CAM of %d test images: %s",
            len(overlays),
            ", ".join(f"{name} {len(idx)}" for name, idx in groups.items()),
        )


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--model", type=Path, required=True, help="classifier checkpoint")
    p.add_argument("--test", type=Path, required=True, help="real test split")
    p.add_argument("--out", type=Path, required=True, help="the figure to write (png)")
    args = p.parse_args(argv)
    run(args, load_slice(args.params, "explain"))


if __name__ == "__main__":
    stage.run(main)
