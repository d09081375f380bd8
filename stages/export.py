"""Stage export: the classifier as ONNX, checked against the checkpoint on the whole test split.

The largest |difference| in P(pneumonia) between onnxruntime and torch is the stage's metric;
above `export.max_abs_diff` the stage fails and writes nothing. For a checkpoint with an input
gate, its decisions must agree on every test image; the largest relative difference in its
score is recorded beside them (float32 sums in another order move a whitened distance by more
than a probability, so the score is not held to `export.max_abs_diff`).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pneumogan.classify.checkpoint import load_classifier
from pneumogan.classify.predictor import predict
from pneumogan.core import stage, tracking
from pneumogan.core.errors import DataError
from pneumogan.core.files import write_json
from pneumogan.core.params import StageParams, load_slice
from pneumogan.data.contract import load_split
from pneumogan.serve.onnx_export import export_onnx, gate_parity, parity
from pneumogan.serve.onnx_runtime import load_onnx

log = logging.getLogger("pneumogan.export")


def run(args: argparse.Namespace, cfg: StageParams) -> None:
    clf = load_classifier(args.model)
    images, _ = load_split(args.test, size=clf.transform.size)
    batch, limit = cfg.evaluate.batch_size, cfg.export.max_abs_diff
    with tracking.stage_run("export", cfg) as run:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
            candidate = Path(tmp) / args.out.name
            export_onnx(clf, candidate, cfg.export.opset)
            p_onnx, score_onnx, flag_onnx = load_onnx(candidate).predict(images, batch_size=batch)
            torch_out = predict(clf, images, batch_size=batch)
            scores = parity(torch_out.p, p_onnx, cfg.evaluate.threshold)
            if torch_out.score is not None:
                scores.update(
                    gate_parity(torch_out.score, torch_out.flagged, score_onnx, flag_onnx)
                )
            log.info(
                "ONNX vs torch on %d test images: max |ΔP(pneumonia)| %.3g (limit %g), "
                "%d labels differ at threshold %g",
                scores["n"],
                scores["max_abs_diff"],
                limit,
                scores["label_flips"],
                cfg.evaluate.threshold,
            )
            if scores["max_abs_diff"] > limit:
                raise DataError(
                    f"the ONNX export differs from the checkpoint by up to "
                    f"{scores['max_abs_diff']:.3g} in P(pneumonia), over export.max_abs_diff "
                    f"= {limit:g}; nothing written"
                )
            if "gate_flips" in scores:
                log.info(
                    "input gate: max relative |Δscore| %.3g, %d decisions differ",
                    scores["gate_max_rel_diff"],
                    scores["gate_flips"],
                )
                if scores["gate_flips"]:
                    raise DataError(
                        f"the ONNX export's input gate decides otherwise than the checkpoint's on "
                        f"{scores['gate_flips']} test image(s) (scores differ by up to "
                        f"{scores['gate_max_rel_diff']:.3g}, relative); nothing written"
                    )
            candidate.replace(args.out)
        write_json(args.metrics, scores)
        run.log_metrics(scores)
        run.log_artifact(args.out, "onnx")
        run.log_artifact(args.metrics)


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--model", type=Path, required=True, help="classifier checkpoint")
    p.add_argument("--test", type=Path, required=True, help="real test split")
    p.add_argument("--out", type=Path, required=True, help="the ONNX file to write")
    p.add_argument("--metrics", type=Path, required=True, help="parity metrics (json)")
    args = p.parse_args(argv)
    run(args, load_slice(args.params, "export"))


if __name__ == "__main__":
    stage.run(main)
