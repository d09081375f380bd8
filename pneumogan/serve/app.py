"""The web app: upload chest X-rays, get the trained classifier's calls, on this machine only.

    pneumogan app [--model M] [--metrics E] [--port P]

starts Streamlit on http://127.0.0.1:P (never on other interfaces) with its usage statistics
off. The app reads the checkpoint and the evaluated threshold exactly as `pneumogan predict`
does and shows the same probabilities, to three decimals, against the threshold, with the
sensitivity and specificity that threshold had on the test split. An image the model's input
gate flags (its out-of-distribution score above the gate's threshold) is marked as not
looking like the chest X-rays the model learned from, and gets no call. Uploads stay in memory:
each file is written to a temporary directory only long enough to be read, then deleted;
the case label typed in the app is never logged, printed or written anywhere, nor put in
the results' CSV download. Research use only, not for diagnosis.

This file is both the launcher (`launch`, imported by `pneumogan.serve.cli`) and the Streamlit
script (run by `streamlit run`, which passes its own arguments after `--`). Importing it is
light: Streamlit, torch and the model code are imported only when the app runs.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
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
from pneumogan.serve.threshold import NOT_AN_XRAY, call, choose_threshold, gate_word

NOTE = "Research use only — not for diagnosis."
TYPES = ["png", "jpg", "jpeg", "dcm", "dicom"]
SHOWN = 224  # about this many pixels a side for the network's input on screen
SENT = 1460  # Streamlit sends an image wider than this downscaled to this width
CSV_NAME = "pneumogan-results.csv"
CSV_COLUMNS = ["file", "p_pneumonia", "ood_score", "gate", "call", "threshold"]
NO_CALL = "no call: flagged"  # what a flagged image shows where a label would stand
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


def read_upload(name: str, data: bytes, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the image as read, at its own size; the model's uint8 input): the uploaded bytes are
    on disk only while being read."""
    with tempfile.TemporaryDirectory(prefix="pneumogan-upload-") as tmp:
        path = Path(tmp) / ("upload" + Path(name).suffix.lower())
        path.write_bytes(data)
        try:
            image = read_image(path)
        except DataError as err:  # name the upload, not the temporary file
            raise type(err)(str(err).replace(str(path), name)) from None
        finally:
            path.unlink(missing_ok=True)
    return image, fit(image, size)


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
        st.markdown(gate_text(clf))
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


def gate_text(clf) -> str:
    """Markdown: the model's input gate, for the sidebar."""
    if clf.gate is None:
        return (
            "Input gate: **none** (a model trained before the gate existed): every image gets "
            "a call, whatever it shows."
        )
    info = clf.gate.info
    passed = info.get("val_pass_rate")
    share = f", which {passed:.1%} of the validation X-rays scored" if passed is not None else ""
    return (
        f"Input gate: OOD score at most **{clf.gate.threshold:.4g}**{share}; above it an image "
        "is flagged and gets no call."
    )


def calls(clf, images: np.ndarray, threshold: float) -> list[dict]:
    """What the app shows for each image: P(pneumonia), the gate's score and word, the call
    (None when flagged); the same predictor and rule as `pneumogan predict`."""
    from pneumogan.classify.predictor import predict  # torch: only once images come

    out = predict(clf, images, batch_size=256)
    rows = []
    for i, p in enumerate(out.p):
        flag = None if out.flagged is None else bool(out.flagged[i])
        rows.append(
            {
                "p_pneumonia": float(p),
                "ood_score": None if out.score is None else float(out.score[i]),
                "gate": gate_word(flag),
                "label": call(float(p), threshold, flag),
            }
        )
    return rows


def flag_text(score: float, gate_threshold: float) -> str:
    """Why a flagged image gets no call."""
    return (
        f"This image {NOT_AN_XRAY}: its out-of-distribution score {score:.4g} is above the "
        f"gate's threshold {gate_threshold:.4g}. No call is made; P(pneumonia) is shown, but "
        "means nothing for an image like this."
    )


def prob(p: float) -> str:
    """A probability to three decimals; '< 0.001' and '> 0.999' where that rounds to 0 or 1
    (a model is never that sure)."""
    text = f"{p:.3f}"
    return {"0.000": "< 0.001", "1.000": "> 0.999"}.get(text, text)


def thr(threshold: float) -> str:
    """A threshold on screen: three significant digits (0.5, 0.358)."""
    return f"{threshold:.3g}"


def result_line(name: str, p: float, label: str) -> str:
    """The line shown for each image: `pneumogan predict`'s numbers, to three decimals."""
    return f"{name} — P(normal) {prob(1.0 - p)} · P(pneumonia) {prob(p)} · {label}"


def _ordered(shown_p: str, shown_t: float, below: bool) -> bool:
    """Whether P(pneumonia) as shown ('0.358', '< 0.001', '> 0.999') reads as below (or, not
    `below`, above) the threshold as shown: never equal to it, never on its other side."""
    bound, side = float(shown_p.lstrip("<> ")), shown_p[0]
    if below:
        return side != ">" and (bound <= shown_t if side == "<" else bound < shown_t)
    return side != "<" and (bound >= shown_t if side == ">" else bound > shown_t)


def call_pair(p: float, threshold: float) -> tuple[str, str]:
    """P(pneumonia) and the threshold printed side by side: prob() and thr(), with decimals
    added to both until the printed numbers differ as the values do (three digits each once
    gave 'P(pneumonia) 0.358, below the threshold 0.358')."""
    shown = prob(p), thr(threshold)
    if p == threshold or _ordered(shown[0], float(shown[1]), p < threshold):
        return shown
    for decimals in range(4, 18):  # one grid for both: rounding keeps their order
        shown = f"{p:.{decimals}f}", f"{threshold:.{decimals}f}"
        if shown[0] != shown[1]:
            return shown
    return repr(p), repr(threshold)


def call_text(p: float, threshold: float, label: str) -> str:
    """The call in words: where P(pneumonia) lies against the threshold."""
    side = "at or above" if p >= threshold else "below"
    shown_p, shown_threshold = call_pair(p, threshold)
    return f"P(pneumonia) {shown_p}, {side} the threshold {shown_threshold}: {label}"


def bar_html(p: float, threshold: float, label: str) -> str:
    """P(pneumonia) as a bar from 0 to 1 with the threshold marked on it and named below; grey
    for a flagged image (no call)."""
    fill, at = 100 * min(max(p, 0.0), 1.0), 100 * threshold
    colour = {LABELS[1]: "#c0392b", LABELS[0]: "#2e86c1"}.get(label, "#95a5a6")
    return (
        f'<div class="pg-bar" role="img" aria-label="{html.escape(call_text(p, threshold, label))}"'
        ' style="margin:0.3rem 0 1.7rem 0">'
        '<div style="position:relative;height:0.9rem;border-radius:3px;'
        'background:rgba(128,128,128,0.25)">'
        f'<div class="pg-fill" style="width:{fill:.2f}%;height:100%;border-radius:3px;'
        f'background:{colour}"></div>'
        f'<div class="pg-threshold" data-threshold="{threshold:g}" style="position:absolute;'
        f"left:{at:.2f}%;top:-0.3rem;height:1.5rem;border-left:2px solid currentColor;"
        'margin-left:-1px"></div>'
        f'<div class="pg-threshold-label" style="position:absolute;left:{at:.2f}%;top:1.3rem;'
        f'transform:translateX(-{at:.0f}%);font-size:0.75rem;white-space:nowrap">'
        f"threshold {thr(threshold)}</div></div></div>"
    )


def operating_point(scores: dict, threshold: float) -> str | None:
    """Markdown: what the threshold in use did on the test split (sensitivity, specificity and
    their intervals), or None when the metrics were scored at another threshold."""
    scored = scores.get("threshold")
    if not isinstance(scored, int | float) or abs(scored - threshold) > 1e-9:
        return None
    ci = scores.get("ci", {})
    level = scores.get("ci_level")
    label = f"{level:.0%} CI" if isinstance(level, int | float) else "CI"
    parts = []
    for key, name, what in (
        ("sensitivity", "Sensitivity", "of the pneumonia X-rays called pneumonia"),
        ("specificity", "Specificity", "of the normal X-rays called normal"),
    ):
        if key not in scores:
            continue
        part = f"**{name} {scores[key]:.1%}** {what}"
        if key in ci:
            part += f" ({label} {ci[key]['low']:.1%}–{ci[key]['high']:.1%})"
        parts.append(part)
    if not parts:
        return None
    n = scores.get("n")
    on = "on the real test split" + (f" ({n} images)" if n else "")
    return f"At threshold {thr(threshold)}, {on}: " + "; ".join(parts) + "."


def results_csv(names: Sequence[str], rows: Sequence[dict], threshold: float) -> str:
    """The session's results as CSV: file name, P(pneumonia), the gate's score and word, call
    (empty when flagged), threshold; no case label and no ground truth (the app never has
    one). `rows` as `calls` makes them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name, r in zip(names, rows, strict=True):
        score = "" if r["ood_score"] is None else f"{r['ood_score']:.6g}"
        writer.writerow(
            [name, f"{r['p_pneumonia']:.6f}", score, r["gate"], r["label"] or "", f"{threshold:g}"]
        )
    return out.getvalue()


def colour_bar_html(top: float, peak: float) -> str:
    """The Grad-CAM colour scale from 0 to `top` (shared by the maps shown), this map's peak
    marked on it."""
    from matplotlib import colormaps  # with the heatmap only, as explain does

    stops = ", ".join(
        f"rgb({r * 255:.0f},{g * 255:.0f},{b * 255:.0f}) {100 * i / 8:.1f}%"
        for i, (r, g, b, _) in enumerate(colormaps["inferno"](np.linspace(0, 1, 9)))
    )
    at = 100 * peak / top if top > 0 else 0.0
    described = f"Grad-CAM colour scale from 0 to {top:.3g}; this map's peak {peak:.3g}"
    return (
        f'<div class="pg-colourbar" role="img" aria-label="{described}" data-top="{top:.6g}"'
        f' data-peak="{peak:.6g}" style="margin:0.2rem 0 0.4rem 0">'
        f'<div style="position:relative;height:0.7rem;background:linear-gradient(to right, '
        f'{stops})">'
        f'<div class="pg-peak" style="position:absolute;left:{at:.2f}%;top:-0.25rem;'
        'height:1.2rem;border-left:2px solid currentColor;margin-left:-1px"></div></div>'
        '<div style="display:flex;justify-content:space-between;font-size:0.75rem">'
        f"<span>0</span><span>{top:.3g}</span></div></div>"
    )


def cam_caption(peak: float, top: float, count: int) -> str:
    """Says what the map's colours mean: one scale for every map on screen."""
    if top <= 0:
        return "Grad-CAM: no evidence for pneumonia in any image shown (all maps are zero)"
    return (
        f"Grad-CAM, one scale for the {count} image(s) shown (top: their largest value); "
        f"this map's peak: {peak / top:.0%} of it"
    )


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
        help="Where the evidence for pneumonia is, on one colour scale shared by the images "
        "shown (its top is the largest value among them): a weak map stays dark.",
    )
    point = operating_point(scores, threshold)
    if not uploads:
        st.caption(
            f"Each image is centre-cropped and resized to {size}×{size}, as the model was "
            f"trained; it is called pneumonia when P(pneumonia) ≥ {thr(threshold)}."
        )
        if point:
            st.caption(point)
        return

    names, originals, images = [], [], []
    for upload in uploads:
        try:
            original, image = read_upload(upload.name, upload.getvalue(), size)
            originals.append(original)
            images.append(image)
            names.append(upload.name)
        except DataError as err:
            st.error(escape(str(err)), icon="🚫")
        except Exception as err:  # a reader bug must not hide the other images
            st.error(f"{escape(upload.name)}: could not be read ({type(err).__name__})", icon="🚫")
    if not images:
        return

    batch = np.stack(images)
    # torch, and captum for the heatmap: loaded when the first image is predicted
    results = calls(clf, batch, threshold)
    if heatmap:
        from pneumogan.evaluate import explain  # captum: only when a heatmap is asked for

        heats = explain.raw_gradcam(clf, batch)
        top = float(heats.max())  # one scale for every map shown
    else:
        heats, top = [None] * len(images), 0.0
    scale = max(1, SHOWN // size)
    head = st.columns([3, 1], vertical_alignment="center")
    head[0].markdown(
        f"{len(images)} image(s); called pneumonia at P(pneumonia) ≥ {thr(threshold)}."
        + (f"  \n{point}" if point else "")
    )
    head[1].download_button(
        "Download results (CSV)",
        results_csv(names, results, threshold),
        file_name=CSV_NAME,
        mime="text/csv",
        on_click="ignore",
        help="File name, P(pneumonia), gate, call and threshold of each image: no case label.",
    )
    rows = zip(names, originals, images, results, heats, strict=True)
    for i, (name, original, image, result, heat) in enumerate(rows):
        p = result["p_pneumonia"]
        label = result["label"] or NO_CALL
        with st.container(border=True, key=f"result_{i}"):
            cols = st.columns([1, 1, 1, 2] if heat is not None else [1, 1, 2])
            h, w = original.shape
            sent = f", sent at {SENT} px wide" if w > SENT else ""
            # at its own size (a narrower column shrinks it on screen, not the pixels sent)
            cols[0].image(original, width=min(w, SENT))
            cols[0].caption(f"uploaded: {w}×{h} px{sent}")
            cols[1].image(np.kron(image, np.ones((scale, scale), np.uint8)))
            cols[1].caption(f"network input: {size}×{size} px, shown ×{scale}")
            if heat is not None:
                peak = float(heat.max())
                shown = heat / top if top > 0 else heat
                cols[2].image(explain.overlay(image, shown, scale=scale))
                cols[2].html(colour_bar_html(top, peak))
                cols[2].caption(cam_caption(peak, top, len(images)))
            out = cols[-1]
            out.subheader(label if result["label"] else "Flagged: not like the training X-rays")
            if result["label"] is None:
                out.warning(flag_text(result["ood_score"], clf.gate.threshold), icon="🚩")
            out.text(result_line(name, float(p), label))
            out.html(bar_html(float(p), threshold, label))


if __name__ == "__main__":
    main(sys.argv[1:])
