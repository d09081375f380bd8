"""Images from files (PNG, JPEG, DICOM) as the pipeline's uint8 grayscale, every failure named.

One output range for every reader: uint8, 0 black to 255 white. 16-bit PNGs are scaled from
their full range (Pillow's `convert("L")` would clip them at 255), colour images are turned
into luma. DICOM is recognised by its `DICM` marker at byte 128, whatever the file's name:
the modality LUT (rescale slope and intercept) first, then the file's VOI (its window, or
its VOI LUT), mapped to 0..255 from the window itself, and MONOCHROME1 inverted last.
An image of another size than a model's is made square (centre crop, or black padding) and
resized (`fit`); the pipeline's own images are already at the model's size and skip that step.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pneumogan.core.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")  # what a folder is searched for


class ReadError(DataError):
    """A file that is not an image this project can read."""


def is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file: 128 bytes of preamble, then `DICM`."""
    with Path(path).open("rb") as f:
        head = f.read(132)
    return head[128:132] == b"DICM"


def read_image(path: Path) -> np.ndarray:
    """A grayscale uint8 H×W array of the image at `path` (PNG, JPEG or DICOM)."""
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"{path}: file not found")
    if is_dicom(path):
        return read_dicom(path)
    return read_picture(path)


def read_picture(path: Path) -> np.ndarray:
    """A PNG or JPEG (anything Pillow opens) as grayscale uint8."""
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
            f"{path}: not an image this reader knows (PNG, JPEG and DICOM are supported)"
        ) from None
    except (OSError, ValueError, SyntaxError) as err:  # truncated or corrupt data
        raise ReadError(f"{path}: unreadable image ({type(err).__name__}: {err})") from None


def _stored_range(ds) -> tuple[float, float]:
    """The values the pixel data can hold, from BitsStored and PixelRepresentation."""
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def _first(value) -> float:
    """The first of a possibly multi-valued DICOM number."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def read_dicom(path: Path) -> np.ndarray:
    """A single-frame grayscale DICOM image, through its modality LUT and VOI, as uint8."""
    # pydicom stays here: about a second to import, paid only when a DICOM file is read, not
    # by every PNG `pneumogan predict` or folder source (or the web app's first upload).
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
        stored = ds.pixel_array
    except (InvalidDicomError, AttributeError, KeyError, ValueError, OSError, RuntimeError) as err:
        raise ReadError(f"{path}: unreadable DICOM ({type(err).__name__}: {err})") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if stored.ndim != 2 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ReadError(
            f"{path}: a {photometric} DICOM of shape {stored.shape}; only single-frame "
            "grayscale (MONOCHROME1 or MONOCHROME2) images are supported"
        )
    lo, hi = _stored_range(ds)  # pydicom masks the pixel data to BitsStored
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    ends = sorted((lo * slope + intercept, hi * slope + intercept))
    if "VOILUTSequence" in ds:
        lut = ds.VOILUTSequence[0]
        out_bits = int(lut.LUTDescriptor[2])
        # A LUT is indexed by integers: the modality output, rounded.
        indices = np.round(values).astype(np.int64)
        values = np.asarray(apply_voi_lut(indices, ds, prefer_lut=True), dtype=np.float64)
        unit = values / (2.0**out_bits - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        # DICOM's linear window (PS3.3 C.11.2.1.2), mapped to 0..1 by the window itself.
        c, w = _first(ds.WindowCenter), max(_first(ds.WindowWidth), 1.0)
        unit = (values - (c - 0.5)) / max(w - 1.0, 1.0) + 0.5
    else:  # no VOI: the whole range the modality LUT can produce
        unit = (values - ends[0]) / max(ends[1] - ends[0], 1.0)
    pixels = np.clip(np.round(np.clip(unit, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    return 255 - pixels if photometric == "MONOCHROME1" else pixels


def find_images(paths: Iterable[Path]) -> list[Path]:
    """Files named on the command line, and every image file under named folders (sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        else:
            found.append(p)  # a missing or foreign file fails in read_image, with its name
    return found


def fit(image: np.ndarray, size: int, mode: str = "crop") -> np.ndarray:
    """Make an image square and size×size (bicubic); an image already that size is kept.

    `mode` "crop" keeps the centred square of the short side; "pad" centres the image on a
    black square of the long side, so nothing is cut off.
    """
    if image.shape == (size, size):
        return image
    h, w = image.shape
    if mode == "crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[top : top + side, left : left + side]
    elif mode == "pad":
        side = max(h, w)
        square = np.zeros((side, side), dtype=np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        square[top : top + h, left : left + w] = image
    else:
        raise ValueError(f"fit mode {mode!r}: expected crop or pad")
    if square.shape == (size, size):
        return square
    resized = Image.fromarray(square).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)
