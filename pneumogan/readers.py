"""Images from files (PNG, JPEG) as the pipeline's uint8 grayscale, with every failure named.

One output range for every reader: uint8, 0 black to 255 white. 16-bit PNGs are scaled from
their full range (Pillow's `convert("L")` would clip them at 255), colour images are turned
into luma. An image of another size than a model's is centre-cropped to a square and resized
(`fit`); the pipeline's own images are already at the model's size and skip that step.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pneumogan.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg")  # what a folder is searched for (any case)


class ReadError(DataError):
    """A file that is not an image this project can read."""


def read_image(path: Path) -> np.ndarray:
    """A grayscale uint8 H×W array of the image at `path`."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                top = 65535.0 if mode.startswith("I;16") else float(max(arr.max(), 1.0))
                return np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
            if mode == "F":
                raise ReadError(f"{path}: floating-point images are not supported; save as PNG")
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except FileNotFoundError:
        raise ReadError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise ReadError(
            f"{path}: not an image Pillow can read (PNG and JPEG are supported)"
        ) from None
    except (OSError, ValueError, SyntaxError) as err:  # truncated or corrupt data
        raise ReadError(f"{path}: unreadable image ({type(err).__name__}: {err})") from None


def find_images(paths: Iterable[Path]) -> list[Path]:
    """Files named on the command line, and every PNG or JPEG under named folders (sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        else:
            found.append(p)  # a missing or foreign file fails in read_image, with its name
    return found


def fit(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, then resize to size×size (bicubic); a fitting image is kept."""
    if image.shape == (size, size):
        return image
    from PIL import Image

    h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(image[top : top + side, left : left + side])
    return np.asarray(square.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
