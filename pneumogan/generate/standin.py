"""Stand-ins for the outputs of a GAN stage that an experiment does not use.

DVC needs every declared output to exist. When `fuse.method` is not `gan`, the reference,
train_gan and synthesize stages write these in well under a second instead of training.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from pneumogan.core.checkpoint import save_checkpoint
from pneumogan.core.files import atomic_path, write_json, write_text

KIND = "skipped"
REASON = "not trained: fuse.method is not gan, so no stage uses it"


def skipped_checkpoint(path: Path) -> None:
    """A checkpoint with no weights; loading it as a network names the reason."""
    save_checkpoint(path, KIND, {}, {"reason": REASON})


def skipped_image(path: Path) -> None:
    """A small PNG that says why there is nothing to show."""
    image = Image.new("L", (420, 28), 255)
    ImageDraw.Draw(image).text((6, 8), REASON, fill=0)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def skipped_table(path: Path, columns: list[str]) -> None:
    """A CSV plot table with its header and no rows."""
    write_text(path, ",".join(columns) + "\n")


def skipped_metrics(path: Path) -> None:
    """An empty details file: `dvc metrics diff --targets` then shows the figures as removed."""
    write_json(path, {})
