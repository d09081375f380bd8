"""The README's screenshot of the web app: docs/app.png, from the trained model.

    python scripts/screenshots.py [--out docs/app.png] [--chromium /usr/bin/chromium]

Starts `pneumogan app` (the command `launch` runs) on a free localhost port with
models/classifier.safetensors and metrics/eval.json, uploads three images of the real test
split (one normal, two pneumonia; written to a temporary folder, never into the repository),
ticks "Grad-CAM heatmap" and saves the whole page, palette-quantised to stay small. Needs
Debian's Chromium (`apt-get install chromium`) and Playwright (the dev group).
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pneumogan.core.choices import LABELS  # noqa: E402
from pneumogan.data.contract import load_split  # noqa: E402
from pneumogan.serve import app  # noqa: E402

WIDTH = 1200


def test_images(folder: Path) -> list[Path]:
    """The first normal and the first two pneumonia images of the test split, as PNG."""
    images, labels = load_split(ROOT / "data/split/test.npz", size=28)
    picks = [*np.flatnonzero(labels == 0)[:1], *np.flatnonzero(labels == 1)[:2]]
    paths = []
    for i in picks:
        path = folder / f"test{i:03d}_true-{LABELS[int(labels[i])]}.png"
        Image.fromarray(images[i]).save(path)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"streamlit not healthy after {timeout} s")


def shoot(port: int, files: list[Path], chromium: str) -> bytes:
    # playwright is a dev dependency: `--help` and the rest of this script work without it
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            expect(page.get_by_text(app.NOTE).first).to_be_visible(timeout=30_000)
            page.get_by_role("textbox", name="Case label").fill("demo: three test-split images")
            page.get_by_role("textbox", name="Case label").press("Enter")
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
                [str(f) for f in files]
            )
            results = page.locator('[data-testid="stText"]').filter(has_text="P(pneumonia)")
            expect(results).to_have_count(len(files), timeout=30_000)
            page.get_by_text("Grad-CAM heatmap", exact=True).click()
            cams = page.locator(".pg-colourbar")  # one colour bar under each Grad-CAM map
            expect(cams).to_have_count(len(files), timeout=30_000)
            page.wait_for_load_state("networkidle")
            expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=30_000)
            for line in results.all_inner_texts():
                print(line)
            # Streamlit scrolls inside its main block, not the page: grow the viewport to it.
            height = page.evaluate(
                "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight"
            )
            page.set_viewport_size({"width": WIDTH, "height": int(height) + 20})
            page.wait_for_timeout(500)
            return page.screenshot(full_page=True)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs/app.png")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args(argv)
    # relative to ROOT, the app's working directory, as `pneumogan app`'s defaults are
    model, metrics = Path("models/classifier.safetensors"), Path("metrics/eval.json")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pneumogan-shots-") as tmp:
        files = test_images(Path(tmp))
        proc = subprocess.Popen(
            app.command(model, metrics, port),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(port, proc)
            png = shoot(port, files, args.chromium)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, dither=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"{args.out}: {image.width}×{image.height}, {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
