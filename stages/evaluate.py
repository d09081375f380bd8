"""Stage evaluate: the classifier on the real test split, read here and nowhere else.

Metrics at evaluate.threshold and at a threshold chosen on the validation split (Youden's J:
the highest sensitivity + specificity − 1 there), bootstrap intervals, calibration, plots.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan import metrics, stage, tracking
from pneumogan.classifier import load_classifier, predict_proba
from pneumogan.io import load_split, write_json
from pneumogan.params import flatten, load_params
from pneumogan.plots import error_grid, evaluation_figure, reliability_figure, save_table

log = logging.getLogger("pneumogan.evaluate")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--model", type=Path, required=True, help="classifier checkpoint")
    p.add_argument("--val", type=Path, required=True, help="real validation split")
    p.add_argument("--test", type=Path, required=True, help="real test split")
    p.add_argument("--metrics", type=Path, required=True, help="test metrics (json)")
    p.add_argument("--plots", type=Path, required=True, help="directory for plot files")
    args = p.parse_args(argv)
    params = load_params(args.params)
    ep = params.evaluate
    model = load_classifier(args.model)
    images, labels = load_split(args.test)
    val_images, val_labels = load_split(args.val, size=images.shape[1])
    logged = flatten({"seed": params.seed, "evaluate": ep})
    with tracking.stage_run("evaluate", logged, params.study) as run:
        val_threshold = metrics.youden_threshold(
            val_labels, predict_proba(model, val_images, batch_size=ep.batch_size)
        )
        prob = predict_proba(model, images, batch_size=ep.batch_size)
        scores = metrics.binary_metrics(labels, prob, ep.threshold)
        scores["ece"] = round(
            metrics.expected_calibration_error(labels, prob, ep.calibration_bins), 6
        )
        scores["ci"] = metrics.bootstrap_ci(
            labels,
            prob,
            ep.threshold,
            resamples=ep.bootstrap_resamples,
            level=ep.ci_level,
            seed=params.seed,
        )
        scores["val_threshold"] = {
            "threshold": round(val_threshold, 6),
            **metrics.binary_metrics(labels, prob, val_threshold),
        }
        reliability = metrics.reliability_table(labels, prob, ep.calibration_bins)
        save_table(args.plots / "reliability.csv", reliability)
        reliability_figure(args.plots / "reliability.png", reliability, scores["ece"])
        error_grid(args.plots / "errors.png", images, labels, prob, ep.threshold, ep.error_grid)
        save_table(args.plots / "roc.csv", metrics.roc_table(labels, prob))
        save_table(args.plots / "pr.csv", metrics.pr_table(labels, prob))
        save_table(
            args.plots / "predictions.csv", metrics.predictions_table(labels, prob, ep.threshold)
        )
        evaluation_figure(args.plots / "evaluation.png", labels, prob, ep.threshold)
        write_json(args.metrics, scores)
        run.log_metrics(flatten(scores))
        run.log_artifact(args.plots, "plots")
        run.log_artifact(args.metrics)
        log.info("test: %s", ", ".join(f"{k} {v}" for k, v in flatten(scores).items()))


if __name__ == "__main__":
    stage.run(main)
