"""Images that are not chest X-rays, made from a seed, and what the input gate makes of them.

`evaluate` scores the model's input gate (`pneumogan.classify.gate`) on the real test split,
where it should pass nearly every image, and on these, where it should flag them:

- `black`, `white`, `grey`: blank images (grey: one level in 1..254 per image);
- `uniform_noise`: every pixel drawn from 0..255; `gaussian_noise`: a random mean and spread;
- `smooth_noise`: noise with a natural image's 1/f amplitude spectrum (random exponent
  between 1 and 2), random brightness and contrast: what photographs look like to a filter;
- `shapes`: rectangles and ellipses of random greys on a random gradient, a cartoon scene;
- `ct_like`: a synthetic axial CT slice (another modality): air black around an elliptical
  body of soft tissue, two dark lungs, a heart, a bright spine and the scanner's table;
- `tiny`, `sliver`: a 1-pixel image and a 3-pixel-high sliver, made square and resized as
  `pneumogan predict` and the app do with any upload (`pneumogan.data.readers.fit`).

Every set has `PER_KIND` images at the model's size, drawn from one random stream, so a run
gives the same images every time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pneumogan.data.readers import fit

PER_KIND = 100  # images per kind
SLIVER = (3, 600)  # height, width of the sliver before it is made square (the 3×60000
# gives the same centre square: `fit` keeps only the 3×3 in the middle)


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in [-1, 1] (y down, x right)."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    return np.meshgrid(c, c, indexing="ij")


def black(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.zeros((size, size), np.uint8)


def white(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.full((size, size), 255, np.uint8)


def grey(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.full((size, size), rng.integers(1, 255), np.uint8)


def uniform_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 256, (size, size), dtype=np.uint8)


def gaussian_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    return _clip(rng.normal(rng.uniform(60, 200), rng.uniform(10, 70), (size, size)))


def smooth_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    amplitude = f ** -rng.uniform(1.0, 2.0)
    amplitude[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, amplitude.shape)
    x = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(size, size))
    x = (x - x.mean()) / (x.std() + 1e-12)
    return _clip(rng.uniform(70, 180) + rng.uniform(25, 60) * x)


def shapes(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = _grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    image = rng.uniform(40, 215) + rng.uniform(-40, 40) * (np.cos(angle) * x + np.sin(angle) * y)
    for _ in range(rng.integers(3, 9)):
        cy, cx = rng.uniform(-0.9, 0.9, 2)
        ry, rx = rng.uniform(0.08, 0.5, 2)
        if rng.random() < 0.5:
            inside = (np.abs(y - cy) < ry) & (np.abs(x - cx) < rx)
        else:
            inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
        image = np.where(inside, rng.uniform(0, 255), image)
    return _clip(image)


def ct_like(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = _grid(size)
    image = np.full((size, size), rng.uniform(0, 12))  # air
    ay, ax = rng.uniform(0.55, 0.75), rng.uniform(0.8, 0.95)  # the body, wider than deep
    body = (y / ay) ** 2 + (x / ax) ** 2 < 1
    image[body] = rng.uniform(95, 125)  # soft tissue
    fat = body & ((y / (ay - 0.06)) ** 2 + (x / (ax - 0.06)) ** 2 >= 1)
    image[fat] = rng.uniform(70, 90)  # the fat under the skin: darker than muscle
    for side in (-1, 1):  # the lungs
        cy, cx = rng.uniform(-0.15, 0.05), side * rng.uniform(0.35, 0.45)
        ry, rx = rng.uniform(0.3, 0.42), rng.uniform(0.2, 0.28)
        image[((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1] = rng.uniform(5, 30)
    heart = ((y + 0.05) / 0.22) ** 2 + ((x - rng.uniform(0.0, 0.12)) / 0.2) ** 2 < 1
    image[heart] = rng.uniform(115, 140)
    spine_y = ay - rng.uniform(0.22, 0.3)
    image[((y - spine_y) / 0.12) ** 2 + (x / 0.1) ** 2 < 1] = rng.uniform(200, 250)  # bone
    image[np.abs(y - (ay + 0.12)) < 0.03] = rng.uniform(120, 170)  # the table under the body
    return _clip(image + rng.normal(0, rng.uniform(2, 8), image.shape))


def tiny(rng: np.random.Generator, size: int) -> np.ndarray:
    return fit(rng.integers(0, 256, (1, 1), dtype=np.uint8), size)


def sliver(rng: np.random.Generator, size: int) -> np.ndarray:
    return fit(rng.integers(0, 256, SLIVER, dtype=np.uint8), size)


KINDS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "black": black,
    "white": white,
    "grey": grey,
    "uniform_noise": uniform_noise,
    "gaussian_noise": gaussian_noise,
    "smooth_noise": smooth_noise,
    "shapes": shapes,
    "ct_like": ct_like,
    "tiny": tiny,
    "sliver": sliver,
}


def non_xrays(size: int, rng: np.random.Generator, n: int = PER_KIND) -> dict[str, np.ndarray]:
    """`n` uint8 images (n×size×size) of each kind, drawn from `rng` kind after kind."""
    return {name: np.stack([make(rng, size) for _ in range(n)]) for name, make in KINDS.items()}


def gate_report(
    labels: np.ndarray,
    test_flagged: np.ndarray,
    flagged_by_kind: dict[str, np.ndarray],
    gate_info: dict,
) -> dict:
    """metrics/eval.json's `gate` block: the threshold, the share of real test X-rays it passes
    (all, and per class), and the share of each non-X-ray set it flags (and of all of them)."""
    passed = ~np.asarray(test_flagged, bool)
    labels = np.asarray(labels)
    every = np.concatenate(list(flagged_by_kind.values()))
    return {
        "threshold": float(gate_info["threshold"]),  # exact: the decision compares with it
        "val_pass_rate": round(float(gate_info["val_pass_rate"]), 6),
        "test_pass_rate": round(float(passed.mean()), 6),
        "test_pass_rate_normal": round(float(passed[labels == 0].mean()), 6),
        "test_pass_rate_pneumonia": round(float(passed[labels == 1].mean()), 6),
        "non_xray_flag_rate": round(float(np.mean(every)), 6),
        "flag_rate": {k: round(float(np.mean(v)), 6) for k, v in flagged_by_kind.items()},
        "n_per_kind": len(next(iter(flagged_by_kind.values()))),
    }
