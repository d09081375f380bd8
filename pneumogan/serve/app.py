"""The web app: upload chest X-rays, get the trained classifier's calls, on this machine only.

    pneumogan app [--model M] [--metrics E] [--port P]

starts Streamlit on http://127.0.0.1:P (never on other interfaces) with its usage statistics
off. The app reads the checkpoint and the evaluated threshold exactly as `pneumogan predict`
does and prints the same probabilities. Uploads stay in memory: each file is written to a
temporary directory only long enough to be read, then deleted; the case label typed in the
app is never logged, printed or written anywhere. Research use only, not for diagnosis.

This file is both the launcher (`launch`, imported by `pneumogan.serve.cli`) and the Streamlit
script (run by `streamlit run`, which passes its own arguments after `--`). Importing it is
light: Streamlit, torch and the model code are imported only when the app runs.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pneumogan.core.choices import LABELS
from pneumogan.core.errors import DataError
from pneumogan.data.readers import fit, read_image
from pneumogan.serve.threshold import choose_threshold

NOTE = "Research use only — not for diagnosis."
TYPES = ["png", "jpg", "jpeg", "dcm", "dicom"]
SHOWN = 224  # about this many pixels a side for the images on screen
METRICS = (  # (key in eval.json, name on screen, depends on the threshold)
    ("auc", "AUC", False),
    ("accuracy", "Accuracy", True),
    ("sensitivity", "Sensitivity", True),
    ("specificity", "Specificity", True),
)


def command(model: Path, metrics: Path, port: int) -> list[str]:
    """The `streamlit run` command line for this app: localhost only, no usage statistics."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(Path(__file__).resolve()),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",  # no "Deploy" button: the app is for this machine
        "--",
        "--model",
        str(model),
        "--metrics",
        str(metrics),
    ]


def launch(model: Path, metrics: Path, port: int) -> int:
    """Run the app until it stops; its exit status, or 2 when the model or metrics are missing."""
    if not Path(model).is_file():
        print(
            f"error: {model}: model not found; train it (dvc repro) or pass --model",
            file=sys.stderr,
        )
        return 2
    if not Path(metrics).is_file():
        print(
            f"error: {metrics}: metrics not found; evaluate the model (dvc repro) or pass "
            "--metrics",
            file=sys.stderr,
        )
        return 2
    proc = subprocess.Popen(command(model, metrics, port))
    try:  # a SIGTERM to the launcher stops the app too, not only the launcher
        previous = signal.signal(signal.SIGTERM, lambda signum, _: proc.send_signal(signum))
    except ValueError:  # not the main thread: no handler
        previous = None
    try:
        return proc.wait()
    except KeyboardInterrupt:  # pass it on (a terminal's Ctrl-C reaches both) and let it stop
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=10)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
            return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# ---- the Streamlit script ----------------------------------------------------------------


def script_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pneumogan app (streamlit script)")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True)
    return p.parse_args(argv)


def escape(text: str) -> str:
    """`text` shown literally by Streamlit's markdown (file names hold `_`, `*`, ...)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>$:])", r"\\\1", text)


def load_model(path: str):
    # torch: imported when the app runs, never by `import pneumogan.serve.app` (the launcher)
    from pneumogan.classify.checkpoint import load_classifier

    return load_classifier(Path(path))


def read_upload(name: str, data: bytes, size: int):
    """The uploaded bytes as the model's uint8 input; on disk only while being read."""
    with tempfile.TemporaryDirectory(prefix="pneumogan-upload-") as tmp:
        path = Path(tmp) / ("upload" + Path(name).suffix.lower())
        path.write_bytes(data)
        try:
            image = read_image(path)
        except DataError as err:  # name the upload, not the temporary file
            raise type(err)(str(err).replace(str(path), name)) from None
        finally:
            path.unlink(missing_ok=True)
    return fit(image, size)


def interval_lines(scores: dict) -> list[str]:
    """Markdown lines: each test metric with its bootstrap interval, as evaluate scored them."""
    ci = scores.get("ci", {})
    level = scores.get("ci_level")
    label = f"{level:.0%} CI" if isinstance(level, int | float) else "CI"
    lines = []
    for key, name, _ in METRICS:
        if key not in scores:
            continue
        line = f"**{name}** {scores[key]:.3f}"
        if key in ci:
            line += f" ({label} {ci[key]['low']:.3f}–{ci[key]['high']:.3f})"
        lines.append(line)
    return lines


def sidebar(st, clf, scores: dict, threshold: float, source: str) -> None:
    with st.sidebar:
        st.header("Model")
        st.markdown(
            f"{escape(clf.config.arch)}, width {clf.config.width}, "
            f"{clf.transform.size}×{clf.transform.size} input"
        )
        if "best_val_auc" in clf.info:
            st.caption(f"best validation AUC {clf.info['best_val_auc']:.3f}")
        st.markdown(f"Threshold **{threshold:g}**  \n({escape(source)})")
        st.subheader("Test metrics")
        n = scores.get("n")
        st.caption(
            "On the real test split"
            + (f" ({n} images)" if n else "")
            + f", at threshold {scores.get('threshold', threshold):g}; intervals: percentile "
            "bootstrap over test images."
        )
        lines = interval_lines(scores)
        if lines:
            st.markdown("  \n".join(lines))
        else:
            st.info("The metrics file holds no test metrics.")
        st.divider()
        st.caption(NOTE)


def result_line(name: str, p: float, label: str) -> str:
    """The line shown for each image: the numbers `pneumogan predict` prints."""
    return f"{name} — P(normal) {1.0 - p:.6f} · P(pneumonia) {p:.6f} · {label}"


def main(argv: Sequence[str]) -> None:
    # `streamlit run` puts this file's folder first on sys.path, where the package's modules
    # would shadow any top-level module of the same name; the package itself is installed.
    # (The module-level imports above, numpy, Pillow and this package's light modules, import
    # no top-level module named like a file of this folder; Streamlit and torch come after.)
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if not p or str(Path(p).resolve()) != here]
    # Streamlit is the app's alone: the launcher (`pneumogan app`) and `import
    # pneumogan.serve.app` must not load it (tests/servers/test_webapp.py).
    import streamlit as st

    args = script_args(argv)
    st.set_page_config(page_title="pneumogan", layout="wide")
    st.title("pneumogan: chest X-ray classifier")
    st.warning(NOTE, icon="⚠️")

    try:
        clf = st.cache_resource(show_spinner="Loading the model…")(load_model)(str(args.model))
        threshold, source = choose_threshold(None, args.metrics)
        scores = json.loads(args.metrics.read_text())
    except (DataError, OSError, ValueError) as err:
        st.error(f"error: {err}")
        st.stop()
    size = clf.transform.size
    sidebar(st, clf, scores, threshold, source)

    ss = st.session_state
    ss.setdefault("session", 0)

    def new_session() -> None:
        for key in (f"files_{ss.session}", f"case_{ss.session}"):
            ss.pop(key, None)
        ss.session += 1

    top = st.columns([3, 1], vertical_alignment="bottom")
    top[0].text_input(
        "Case label",
        key=f"case_{ss.session}",
        placeholder="optional, for your own reference",
        help="Shown only in this browser tab: never logged, printed or written anywhere, and "
        "cleared by New session.",
    )
    top[1].button("New session", on_click=new_session, help="Clear the uploads, label, results")
    uploads = st.file_uploader(
        "Chest X-ray images (PNG, JPEG or DICOM)",
        type=TYPES,
        accept_multiple_files=True,
        key=f"files_{ss.session}",
        help="Kept in memory only; each file touches the disk only while it is read.",
    )
    heatmap = st.checkbox(
        "Grad-CAM heatmap",
        key="heatmap",
        help="Where the evidence for pneumonia is (scaled per image: where, not how much).",
    )
    if not uploads:
        st.caption(
            f"Each image is centre-cropped and resized to {size}×{size}, as the model was "
            f"trained; it is called pneumonia when P(pneumonia) ≥ {threshold:g}."
        )
        return

    names, images = [], []
    for upload in uploads:
        try:
            images.append(read_upload(upload.name, upload.getvalue(), size))
            names.append(upload.name)
        except DataError as err:
            st.error(escape(str(err)), icon="🚫")
        except Exception as err:  # a reader bug must not hide the other images
            st.error(f"{escape(upload.name)}: could not be read ({type(err).__name__})", icon="🚫")
    if not images:
        return

    # torch, and captum for the heatmap: loaded when the first image is predicted
    from pneumogan.classify.predictor import predict_proba

    batch = np.stack(images)
    probs = predict_proba(clf, batch, batch_size=256)
    if heatmap:
        from pneumogan.evaluate import explain  # captum: only when a heatmap is asked for

        heats = explain.gradcam(clf, batch)
    else:
        heats = [None] * len(images)
    scale = max(1, SHOWN // size)
    st.caption(f"{len(images)} image(s); called pneumonia at P(pneumonia) ≥ {threshold:g}.")
    for i, (name, image, p, heat) in enumerate(zip(names, images, probs, heats, strict=True)):
        label = LABELS[int(p >= threshold)]
        with st.container(border=True, key=f"result_{i}"):
            cols = st.columns([1, 1, 2] if heat is not None else [1, 3])
            cols[0].image(np.kron(image, np.ones((scale, scale), np.uint8)), caption="input")
            if heat is not None:
                cols[1].image(explain.overlay(image, heat, scale=scale), caption="Grad-CAM")
            out = cols[-1]
            out.subheader(label)
            out.text(result_line(name, float(p), label))
            out.progress(float(p), text="P(pneumonia)")


if __name__ == "__main__":
    main(sys.argv[1:])
