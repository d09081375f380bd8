"""Stage evaluate: the classifier on the real test split, read here and nowhere else.

Metrics at evaluate.threshold and at a threshold chosen on the validation split (Youden's J:
the highest sensitivity + specificity − 1 there), bootstrap intervals, calibration, plots; and
the input gate: the share of real test X-rays it passes and the share of generated non-X-ray
images (blank, noise, natural-image-like, CT-like, tiny) it flags.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan.classify.checkpoint import load_classifier
from pneumogan.classify.predictor import gate_scores, predict_proba
from pneumogan.core import seeds, stage, tracking
from pneumogan.core.files import write_json, write_table
from pneumogan.core.params import StageParams, flatten, load_slice
from pneumogan.data.contract import load_sources, load_split
from pneumogan.evaluate import metrics, ood
from pneumogan.report import figures
from pneumogan.serve import mlflow_model

log = logging.getLogger("pneumogan.evaluate")


def run(args: argparse.Namespace, cfg: StageParams) -> None:
    ep = cfg.evaluate
    clf = load_classifier(args.model)
    images, labels = load_split(args.test, size=clf.transform.size)
    val_images, val_labels = load_split(args.val, size=clf.transform.size)
    with tracking.stage_run("evaluate", cfg) as run:
        p_val = predict_proba(clf, val_images, batch_size=ep.batch_size)
        prob = predict_proba(clf, images, batch_size=ep.batch_size)
        scores = metrics.score_test(
            labels,
            prob,
            val_threshold=metrics.youden_threshold(val_labels, p_val),
            threshold=ep.threshold,
            calibration_bins=ep.calibration_bins,
            resamples=ep.bootstrap_resamples,
            level=ep.ci_level,
            rng=seeds.numpy_rng(cfg.seed, "evaluate"),
        )
        score = None
        if clf.gate is None:
            log.info("the model has no input gate (trained before it existed): no gate figures")
        else:
            score, flagged = gate_scores(clf, images, batch_size=ep.batch_size)
            sets = ood.non_xrays(clf.transform.size, seeds.numpy_rng(cfg.seed, "evaluate_ood"))
            by_kind = {
                kind: gate_scores(clf, x, batch_size=ep.batch_size)[1] for kind, x in sets.items()
            }
            scores["gate"] = ood.gate_report(labels, flagged, by_kind, clf.gate.info)
            log.info(gate_line(scores["gate"]))
        out = args.plots
        reliability = metrics.reliability_table(labels, prob, ep.calibration_bins)
        write_table(out / "reliability.csv", reliability)
        write_table(out / "roc.csv", metrics.roc_table(labels, prob))
        write_table(out / "pr.csv", metrics.pr_table(labels, prob))
        write_table(
            out / "predictions.csv",
            metrics.predictions_table(
                labels, prob, ep.threshold, load_sources(args.test), ood_score=score
            ),
        )
        figures.reliability_figure(out / "reliability.png", reliability, scores["ece"])
        figures.error_grid(out / "errors.png", images, labels, prob, ep.threshold, ep.error_grid)
        figures.evaluation_figure(out / "evaluation.png", labels, prob, ep.threshold)
        write_json(args.metrics, scores)
        write_json(args.headline, metrics.headline(scores))
        run.log_metrics(flatten(scores))
        run.log_artifact(out, "plots")
        run.log_artifact(args.metrics)
        model = mlflow_model.log_classifier(args.model, images[:2])
        log.info(metrics.summary_line(scores, ep.ci_level))
        published = mlflow_model.publish(
            model,
            auc=metrics.ranking_metrics(val_labels, p_val)["auc"],  # validation chooses
            name=ep.register_as,
            min_auc=ep.register_min_val_auc,
            alias=ep.champion_alias,
            study=cfg.pipeline().get("study"),
        )
        log.info(published)


def gate_line(gate: dict) -> str:
    rates = ", ".join(f"{kind} {rate:.0%}" for kind, rate in gate["flag_rate"].items())
    return (
        f"input gate (threshold {gate['threshold']:.4g}): passes {gate['test_pass_rate']:.1%} "
        f"of the real test X-rays; flags {gate['non_xray_flag_rate']:.1%} of the generated "
        f"non-X-ray images ({rates})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--model", type=Path, required=True, help="classifier checkpoint")
    p.add_argument("--val", type=Path, required=True, help="real validation split")
    p.add_argument("--test", type=Path, required=True, help="real test split")
    p.add_argument("--metrics", type=Path, required=True, help="every test figure (json)")
    p.add_argument(
        "--headline", type=Path, required=True, help="the figures a reviewer reads first (json)"
    )
    p.add_argument("--plots", type=Path, required=True, help="directory for plot files")
    args = p.parse_args(argv)
    run(args, load_slice(args.params, "evaluate"))


if __name__ == "__main__":
    stage.run(main)
