"""The `pneumogan` command: predictions for chest X-ray images from the trained classifier.

    pneumogan predict IMAGE_OR_FOLDER... [--threshold T|val] [--csv FILE] [--json FILE]
                      [--cam DIR] [--onnx] [--max-pixels N]
    pneumogan app [--port P]
    pneumogan review [REV] [--md]

Images: PNG, JPEG and DICOM (single-frame grayscale).

The preprocessing is the checkpoint's own (its image size and pixel map); the threshold is
the one `evaluate` scored (`metrics/eval.json`) unless given. The model's input gate scores
every image (`OOD score`); an image above the gate's threshold is flagged: its probabilities
are shown, but it gets no label (`—`, empty in CSV, null in JSON). `--onnx` runs the exported
graph (`models/classifier.onnx`, from the `export` stage) with onnxruntime; torch is not
imported. Unreadable files get one line
each on stderr and the rest still run; the exit status is 0 when every file was predicted,
1 when some failed, 2 when nothing could run (no model, no images, a bad option). Each run
that predicts says once, on stderr, that it is for research use only, not for diagnosis.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pneumogan.core.errors import DataError
from pneumogan.core.files import atomic_path, write_text
from pneumogan.data.readers import MAX_PIXELS, find_images, fit, read_image
from pneumogan.serve.app import NOTE, launch
from pneumogan.serve.threshold import (
    call,
    choose_threshold,
    gate_line,
    gate_word,
    parse_threshold,
)

DEFAULT_MODEL = Path("models/classifier.safetensors")
DEFAULT_ONNX = Path("models/classifier.onnx")
DEFAULT_METRICS = Path("metrics/eval.json")


def model_path(given: Path | None, default: Path) -> Path:
    """The model to load: `given`, else the project's own; outside a project, one line saying
    what to pass rather than a stage to rerun."""
    if given is not None or default.exists() or Path("dvc.yaml").is_file():
        return given or default
    raise DataError(
        f"no model at {default}: {Path.cwd()} is not a pneumogan project; pass --model "
        "(a checkpoint, or an ONNX graph with --onnx), or run inside the project after dvc repro"
    )


def load_predictor(args: argparse.Namespace):
    """(image size, images -> (P(pneumonia), gate score, gate flag), the gate's threshold, the
    torch Classifier or None for ONNX); score, flag and threshold are None without a gate."""
    if args.onnx:
        # onnxruntime is imported only for --onnx (the torch path never needs it)
        from pneumogan.serve.onnx_runtime import load_onnx

        graph = load_onnx(model_path(args.model, DEFAULT_ONNX))
        return graph.size, graph.predict, graph.gate_threshold, None
    # torch is imported only here: `predict --onnx` must run without it (tests/unit/test_export)
    from pneumogan.classify.checkpoint import load_classifier
    from pneumogan.classify.predictor import predict as predict_torch

    clf = load_classifier(model_path(args.model, DEFAULT_MODEL))

    def run(images: np.ndarray, batch_size: int):
        out = predict_torch(clf, images, batch_size=batch_size)
        return out.p, out.score, out.flagged

    return clf.transform.size, run, None if clf.gate is None else clf.gate.threshold, clf


def prediction_rows(
    paths: Sequence[Path],
    p: np.ndarray,
    score: np.ndarray | None,
    flagged: np.ndarray | None,
    threshold: float,
) -> list[dict]:
    """One row per image: file, probabilities, the gate's score and word, and the call (None
    for an image the gate flagged)."""
    rows = []
    for i, (path, pneumonia) in enumerate(zip(paths, p, strict=True)):
        flag = None if flagged is None else bool(flagged[i])
        rows.append(
            {
                "file": str(path),
                "p_normal": 1.0 - float(pneumonia),
                "p_pneumonia": float(pneumonia),
                "ood_score": None if score is None else float(score[i]),
                "gate": gate_word(flag),
                "label": call(float(pneumonia), threshold, flag),
            }
        )
    return rows


def predict(args: argparse.Namespace) -> int:
    if args.onnx and args.cam:
        raise DataError("--cam needs the torch checkpoint (Grad-CAM); drop --onnx")
    size, run_model, gate_threshold, clf = load_predictor(args)
    threshold, source = choose_threshold(args.threshold, args.metrics)
    files = find_images(args.paths)
    if not files:
        raise DataError(f"no PNG, JPEG or DICOM images in {', '.join(map(str, args.paths))}")
    print(NOTE, file=sys.stderr)  # once per run, before any prediction; stdout stays the table
    images, ok, failed = [], [], 0
    for path in files:
        try:
            images.append(fit(read_image(path, args.max_pixels, "--max-pixels"), size))
            ok.append(path)
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
    rows = []
    if ok:
        p, score, flagged = run_model(np.stack(images), batch_size=args.batch_size)
        rows = prediction_rows(ok, p, score, flagged, threshold)
    print(table(rows, threshold, source, gate_threshold))
    if args.cam and ok:  # --onnx with --cam was refused above, so clf is the checkpoint
        write_heatmaps(clf, np.stack(images), ok, args.cam)
    if args.csv:
        write_text(args.csv, to_csv(rows))
    if args.json:
        doc = {
            "threshold": threshold,
            "threshold_from": source,
            "gate_threshold": gate_threshold,
            "predictions": rows,
        }
        write_text(args.json, json.dumps(doc, indent=2) + "\n")
    if failed:
        print(f"{failed} of {len(files)} files failed", file=sys.stderr)
    return 1 if failed else 0


def write_heatmaps(clf, images, paths: list[Path], out: Path) -> None:
    """One Grad-CAM overlay PNG per predicted image, named after it, in `out`."""
    # torch and captum: only --cam (never with --onnx) pays for them
    from pneumogan.evaluate.explain import gradcam, overlay

    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for i, (path, image, heat) in enumerate(zip(paths, images, gradcam(clf, images), strict=True)):
        name = f"{path.stem}_cam.png"
        if name in used:  # the same name in two folders
            name = f"{path.stem}_{i}_cam.png"
        used.add(name)
        with atomic_path(out / name) as tmp:
            Image.fromarray(overlay(image, heat)).save(tmp, format="PNG")
    print(f"heatmaps: {len(paths)} in {out}", file=sys.stderr)


def table(
    rows: list[dict], threshold: float, source: str, gate_threshold: float | None = None
) -> str:
    width = max([len(r["file"]) for r in rows] + [4])
    lines = [
        f"threshold {threshold:g} ({source})",
        gate_line(gate_threshold),
        f"{'file':<{width}}  {'P(normal)':>9}  {'P(pneumonia)':>12}  {'OOD score':>9}  "
        f"{'gate':<7}  label",
    ]
    for r in rows:
        score = "-" if r["ood_score"] is None else f"{r['ood_score']:.2f}"
        lines.append(
            f"{r['file']:<{width}}  {r['p_normal']:>9.6f}  {r['p_pneumonia']:>12.6f}  "
            f"{score:>9}  {r['gate']:<7}  {r['label'] or '—'}"
        )
    return "\n".join(lines)


CSV_COLUMNS = ["file", "p_normal", "p_pneumonia", "ood_score", "gate", "label"]


def to_csv(rows: list[dict]) -> str:
    """The rows as CSV: an absent score and a withheld label are empty cells."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if r[k] is None else r[k] for k in CSV_COLUMNS} for r in rows)
    return out.getvalue()


def positive_int(text: str) -> int:
    """An argparse type: a whole number above zero (underscores allowed: 50_000_000)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number above 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pneumogan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="P(normal) and P(pneumonia) for image files or folders")
    pr.add_argument(
        "paths", nargs="+", type=Path, help="PNG, JPEG or DICOM files, or folders of them"
    )
    pr.add_argument(
        "--model",
        type=Path,
        default=None,
        help=f"classifier checkpoint ({DEFAULT_MODEL}), or ONNX graph with --onnx ({DEFAULT_ONNX})",
    )
    pr.add_argument(
        "--onnx",
        action="store_true",
        help="run the exported ONNX graph with onnxruntime instead of torch (no --cam)",
    )
    pr.add_argument(
        "--metrics",
        type=Path,
        default=DEFAULT_METRICS,
        help=f"where the evaluated threshold is read ({DEFAULT_METRICS})",
    )
    pr.add_argument(
        "--threshold",
        type=parse_threshold,
        default=None,
        help="P(pneumonia) at or above which an image is called pneumonia; 'val' "
        "for the validation-chosen one (default: evaluate.threshold, as scored)",
    )
    pr.add_argument("--csv", type=Path, help="also write the predictions as CSV")
    pr.add_argument("--json", type=Path, help="also write the predictions as JSON")
    pr.add_argument("--cam", type=Path, metavar="DIR", help="also write Grad-CAM overlays here")
    pr.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    pr.add_argument(
        "--max-pixels",
        type=positive_int,
        default=MAX_PIXELS,
        metavar="N",
        help=f"refuse images of more pixels than this, from their header ({MAX_PIXELS:,})",
    )
    ap = sub.add_parser("app", help="the web app, on http://127.0.0.1:PORT only")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"({DEFAULT_MODEL})")
    ap.add_argument(
        "--metrics",
        type=Path,
        default=DEFAULT_METRICS,
        help=f"threshold and test metrics shown in the app ({DEFAULT_METRICS})",
    )
    ap.add_argument("--port", type=int, default=8501, help="(8501)")
    rv = sub.add_parser(
        "review",
        help="the workspace's test metrics against REV's, with paired bootstrap intervals",
    )
    rv.add_argument(
        "rev", nargs="?", default=None, help="git revision to compare with (main, or HEAD on main)"
    )
    rv.add_argument("--md", action="store_true", help="Markdown, for a pull-request comment")
    rv.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (2000)")
    rv.add_argument("--level", type=float, default=0.95, help="interval level (0.95)")
    rv.add_argument("--seed", type=int, default=0, help="the resampling's seed (0)")
    return p


def review(args: argparse.Namespace) -> int:
    # pandas and scipy load only for a review: predict stays light
    from pneumogan.evaluate.review import render
    from pneumogan.evaluate.review import review as compare

    if not 0 < args.level < 1 or args.resamples < 1:
        raise DataError("--level must be between 0 and 1 and --resamples at least 1")
    root = Path.cwd()
    result = compare(root, args.rev, resamples=args.resamples, level=args.level, seed=args.seed)
    print(render(result, md=args.md), end="")
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "app":
            return launch(args.model, args.metrics, args.port)
        if args.command == "review":
            return review(args)
        return predict(args)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
