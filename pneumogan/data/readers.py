"""Images from files (PNG, JPEG, DICOM) as the pipeline's uint8 grayscale, every failure named.

One output range for every reader: uint8, 0 black to 255 white. 16-bit PNGs are scaled from
their full range (Pillow's `convert("L")` would clip them at 255), colour images are turned
into luma. DICOM is recognised by its `DICM` marker at byte 128, whatever the file's name:
the modality LUT (rescale slope and intercept) first, then the file's VOI (its window, or
its VOI LUT), mapped to 0..255 from the window itself, and MONOCHROME1 inverted last.
An image of another size than a model's is made square (centre crop, or black padding) and
resized (`fit`); the pipeline's own images are already at the model's size and skip that step.

Every failure is a `ReadError` of one line: the file, what is wrong, what to do. An image of
more pixels than `max_pixels` (`MAX_PIXELS` unless given) is refused from the size in its
header, before anything is decoded: a PNG of a few bytes can claim 20000 x 20000 pixels.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pneumogan.core.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")  # what a folder is searched for
# The most pixels an image may have. 50 megapixels (7071 px square) is far above any radiograph
# (a large detector gives about 4300 x 4300) and decodes in well under a gigabyte.
MAX_PIXELS = 50_000_000
_PILLOW_GLOBAL = threading.Lock()  # guards Pillow's limit, a module global, while it is lifted


class ReadError(DataError):
    """A file that is not an image this project can read."""


class _NoDecoderTracebacks(logging.Filter):
    """pydicom logs a traceback for every decoder that fails on a frame; the ReadError that
    read_dicom raises says the same in one line, so those records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None


_QUIET_DECODERS = _NoDecoderTracebacks()


def is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file: 128 bytes of preamble, then `DICM`."""
    with Path(path).open("rb") as f:
        head = f.read(132)
    return head[128:132] == b"DICM"


def reason(err: BaseException) -> str:
    """An exception as one line: its type and message, without newlines or object addresses."""
    text = " ".join(re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "", str(err)).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def check_size(path: Path, width: int, height: int, max_pixels: int, limit_flag: str) -> None:
    """Refuse an image of more than `max_pixels` pixels, from the size its header gives."""
    if width * height <= max_pixels:
        return
    more = f", or raise {limit_flag} if you trust the file" if limit_flag else ""
    raise ReadError(
        f"{path}: {width} x {height} pixels ({width * height / 1e6:.3g} megapixels), more than "
        f"the {max_pixels / 1e6:g} megapixels read at most; downscale it{more}"
    )


@contextmanager
def _pillow_limit(max_pixels: int | None) -> Iterator[None]:
    """Pillow's own bomb check (`Image.MAX_IMAGE_PIXELS`: a warning above it, an error above
    twice it) silenced, and lifted to `max_pixels` when that is higher (None: no check)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        limit = Image.MAX_IMAGE_PIXELS
        if limit is None or (max_pixels is not None and max_pixels <= limit):
            yield
            return
        with _PILLOW_GLOBAL:
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                yield
            finally:
                Image.MAX_IMAGE_PIXELS = limit


def _open(path: Path, max_pixels: int, limit_flag: str) -> Image.Image:
    """The image at `path`, opened (header only), refused when it has too many pixels."""
    try:
        with _pillow_limit(max_pixels):
            im = Image.open(path)
    except Image.DecompressionBombError:  # past twice Pillow's limit: ours is lower
        with _pillow_limit(None), Image.open(path) as big:  # the header only, for its size
            size = big.size
        check_size(path, *size, max_pixels, limit_flag)
        raise  # not reached: more than twice Pillow's limit is more than ours
    try:
        check_size(path, im.width, im.height, max_pixels, limit_flag)
    except ReadError:
        im.close()
        raise
    return im


def read_image(path: Path, max_pixels: int = MAX_PIXELS, limit_flag: str = "") -> np.ndarray:
    """A grayscale uint8 H×W array of the image at `path` (PNG, JPEG or DICOM).

    An image of more than `max_pixels` pixels is refused; the message names `limit_flag`
    (`--max-pixels`, say) as the way to raise the limit, when the caller has one.
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder, not an image file" if path.is_dir() else "file not found"
        raise ReadError(f"{path}: {what}; check the path")
    if is_dicom(path):
        return read_dicom(path, max_pixels, limit_flag)
    return read_picture(path, max_pixels, limit_flag)


def read_picture(path: Path, max_pixels: int = MAX_PIXELS, limit_flag: str = "") -> np.ndarray:
    """A PNG or JPEG (anything Pillow opens) as grayscale uint8."""
    try:
        with _open(path, max_pixels, limit_flag) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                top = 65535.0 if mode.startswith("I;16") else float(max(arr.max(), 1.0))
                return np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
            if mode == "F":
                raise ReadError(
                    f"{path}: floating-point pixels are not supported; save it as an 8- or "
                    "16-bit grayscale PNG"
                )
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except ReadError:
        raise
    except FileNotFoundError:
        raise ReadError(f"{path}: file not found; check the path") from None
    except UnidentifiedImageError:
        raise ReadError(
            f"{path}: not an image this reader knows (PNG, JPEG and DICOM are supported); "
            "save it as one of those"
        ) from None
    except MemoryError:
        raise ReadError(f"{path}: too large to decode in memory; downscale it") from None
    except Exception as err:  # truncated or corrupt data: OSError, ValueError, SyntaxError...
        raise ReadError(
            f"{path}: unreadable image ({reason(err)}); the file is truncated or corrupt: "
            "copy or export it again"
        ) from None


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


def read_dicom(path: Path, max_pixels: int = MAX_PIXELS, limit_flag: str = "") -> np.ndarray:
    """A single-frame grayscale DICOM image, through its modality LUT and VOI, as uint8."""
    # pydicom stays here: about a second to import, paid only when a DICOM file is read, not
    # by every PNG `pneumogan predict` or folder source (or the web app's first upload).
    import pydicom

    decoders = logging.getLogger("pydicom.pixels.decoders.base")
    if _QUIET_DECODERS not in decoders.filters:
        decoders.addFilter(_QUIET_DECODERS)
    try:
        ds = pydicom.dcmread(path)
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except MemoryError:
        raise ReadError(f"{path}: too large to read in memory") from None
    except AttributeError:
        raise ReadError(
            f"{path}: a DICOM file without an image (no Rows or Columns); export the image"
        ) from None
    except Exception as err:  # pydicom's InvalidDicomError, OSError, ValueError, ...
        raise ReadError(
            f"{path}: unreadable DICOM ({reason(err)}); the file is truncated or corrupt: "
            "copy or export it again"
        ) from None
    if "PixelData" not in ds:
        raise ReadError(f"{path}: a DICOM file without pixel data; export the image itself")
    if frames > 1:  # refused from the header: neither a size to downscale nor frames to decode
        raise ReadError(
            f"{path}: a DICOM of {frames} frames ({cols} x {rows} pixels each); only "
            "single-frame grayscale (MONOCHROME1 or MONOCHROME2) images are supported: export "
            "one grayscale frame"
        )
    check_size(path, cols, rows, max_pixels, limit_flag)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        stored = ds.pixel_array
    except MemoryError:
        raise ReadError(f"{path}: too large to decode in memory") from None
    except Exception as err:  # pydicom's handlers raise RuntimeError, ValueError, ...
        name = getattr(syntax, "name", None) or "its transfer syntax"
        raise ReadError(
            f"{path}: DICOM pixel data that cannot be decoded ({name}; {reason(err)}); the "
            "image is corrupt or compressed in a way no installed decoder reads: export it "
            "uncompressed (Explicit VR Little Endian) or as PNG"
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if stored.ndim != 2 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ReadError(
            f"{path}: a {photometric} DICOM of shape {stored.shape}; only single-frame "
            "grayscale (MONOCHROME1 or MONOCHROME2) images are supported: export one "
            "grayscale frame"
        )
    try:
        pixels = _display(ds, stored)
    except Exception as err:  # a malformed rescale, window or VOI LUT
        raise ReadError(
            f"{path}: DICOM rescale, window or VOI LUT that cannot be applied ({reason(err)}); "
            "fix or remove those attributes, or export the image as PNG"
        ) from None
    return 255 - pixels if photometric == "MONOCHROME1" else pixels


def _display(ds, stored: np.ndarray) -> np.ndarray:
    """Stored DICOM values through the modality LUT and the VOI, as uint8 (MONOCHROME2)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

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
    return np.clip(np.round(np.clip(unit, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)


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
