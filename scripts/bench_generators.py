"""What one balancing-study cell costs each generator arm on this machine, from measured steps.

    uv run python scripts/bench_generators.py              # studies/balancing.yaml's arms
    uv run python scripts/bench_generators.py --gpu-above 60

For each generator arm of the study file, on the real training split (`data/split/train.npz`,
from `dvc repro`) and with the arm's params (params.yaml and the arm's overrides), it times
training steps of the real training loop and images drawn by the real drawing code, then
multiplies them out for every cap of the study: the images the generator learns from (the
minority class's, or every image for a conditional generator), `gan.epochs` passes over them,
a held-out FID check every `gan.eval_every` epochs, and the images `synthesize` draws. The
classifier's share of a cell is the same for every arm and is not counted here. A cell whose
estimate exceeds `--gpu-above` minutes is one to mark `gpu` in the study file.

It writes `reports/generator_costs.csv` and `reports/generator_costs.md`. Run it alone: a
second training beside it on a 2-core machine makes every figure several times larger.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pneumogan.classify import nets as _classifiers  # noqa: E402, F401  (fills CLASSIFIERS)
from pneumogan.core.choices import LABELS  # noqa: E402
from pneumogan.core.files import write_text  # noqa: E402
from pneumogan.core.params import load_params, override  # noqa: E402
from pneumogan.core.registry import GENERATORS  # noqa: E402
from pneumogan.core.transforms import ImageTransform  # noqa: E402
from pneumogan.data.balance import minority_class  # noqa: E402
from pneumogan.data.contract import load_split  # noqa: E402
from pneumogan.generate import nets as _generators  # noqa: E402, F401  (fills GENERATORS)
from pneumogan.generate.config import GanConfig  # noqa: E402
from pneumogan.generate.synthesis import draw  # noqa: E402
from pneumogan.generate.train import train_gan  # noqa: E402
from pneumogan.report.markdown import table  # noqa: E402
from pneumogan.study.spec import ALL, load_study  # noqa: E402

TIMED_STEPS = 8  # training steps timed per arm (after one untimed epoch of two steps)
TIMED_IMAGES = 16  # images drawn and timed per arm


def arm_params(study, arm: str):
    """params.yaml with the arm's overrides (`-S` values parsed as YAML, as DVC does)."""
    pairs = (a.partition("=") for a in dict(study.generators)[arm])
    changes = {k: yaml.safe_load(v) for k, _, v in pairs}
    return override(load_params(ROOT / "params.yaml"), changes, f"generators.{arm}").gan


def seconds_per_step(images, labels, cfg: GanConfig, gan) -> float:
    """Median wall time of one training step of the real loop (batch `gan.batch_size`)."""

    def epoch_time(n_batches: int) -> float:
        n = n_batches * gan.batch_size
        s = gan.model_copy(update={"epochs": 1, "eval_every": 10**6, "sample_every": 10**6})
        start = time.perf_counter()
        train_gan(
            images[:n],
            cfg,
            s,
            labels=labels[:n] if cfg.classes else None,
            generator=torch.Generator().manual_seed(0),
            fixed_z=torch.randn(1, cfg.latent_dim),
            device=torch.device("cpu"),
            score=lambda G: 0.0,
        )
        return time.perf_counter() - start

    epoch_time(2)  # warm-up: first calls allocate and pick kernels
    # the difference of two epoch lengths cancels the fixed cost of each call
    return (epoch_time(2 + TIMED_STEPS) - epoch_time(2)) / TIMED_STEPS


def seconds_per_image(cfg: GanConfig) -> float:
    """Wall time per image drawn by the real drawing code, at synthesis's batch size."""
    G = GENERATORS.get(cfg.variant).build(cfg)[0].eval()
    label = 0 if cfg.classes else None
    transform = ImageTransform(size=cfg.size)
    draw(G, transform, 2, label=label, batch_size=512, generator=torch.Generator())
    start = time.perf_counter()
    draw(G, transform, TIMED_IMAGES, label=label, batch_size=512, generator=torch.Generator())
    return (time.perf_counter() - start) / TIMED_IMAGES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--study", type=Path, default=ROOT / "studies" / "balancing.yaml")
    p.add_argument("--train", type=Path, default=ROOT / "data" / "split" / "train.npz")
    p.add_argument("--val", type=Path, default=ROOT / "data" / "split" / "val.npz")
    p.add_argument("--gpu-above", type=float, default=60.0, help="minutes (default 60)")
    args = p.parse_args()
    study = load_study(args.study)
    images, labels = load_split(args.train)
    val_labels = load_split(args.val)[1]
    minority = minority_class(labels)
    counts = np.bincount(labels, minlength=len(LABELS))
    ratio = counts[1 - minority] / counts[minority]  # keep_ratio: the other class's multiple
    order = np.random.default_rng(0).permutation(len(images))  # both classes in every batch
    images, labels = images[order], labels[order]
    rows = []
    for arm, _ in study.generators:
        if arm not in {*study.methods, *study.cap_methods}:
            continue
        gan = arm_params(study, arm)
        tags = GENERATORS.get(gan.variant).tags
        conditional, diffusion = "conditional" in tags, "diffusion" in tags
        size = images.shape[1]
        cfg = GanConfig(
            size=size,
            latent_dim=size * size if diffusion else gan.latent_dim,
            width=gan.width,
            variant=gan.variant,
            steps=gan.sampling_steps,
            classes=len(LABELS) if conditional else 0,
            guidance=gan.guidance,
        )
        torch.manual_seed(0)
        step, image = seconds_per_step(images, labels, cfg, gan), seconds_per_image(cfg)
        print(f"{arm}: {step:.3f} s a training step, {image * 1000:.1f} ms an image", flush=True)
        for cap in [None, *study.caps]:
            n_min = counts[minority] if cap is None else cap
            n_other = counts[1 - minority] if cap is None else round(cap * ratio)
            learnt = n_min + n_other if conditional else n_min
            steps = gan.epochs * math.ceil(learnt / gan.batch_size)
            checks = math.ceil(gan.epochs / gan.eval_every)
            # each check draws one image per minority training image; synthesize draws the
            # missing minority images (or the held-out probe) and, if conditional, a probe of
            # the other class
            drawn = checks * n_min + max(n_other - n_min, int((val_labels == minority).sum()))
            drawn += int((val_labels != minority).sum()) if conditional else 0
            total = steps * step + drawn * image
            rows.append(
                {
                    "method": arm,
                    "variant": gan.variant,
                    "cap": ALL if cap is None else cap,
                    "images_learnt": int(learnt),
                    "training_steps": steps,
                    "images_drawn": drawn,
                    "seconds_per_step": round(step, 4),
                    "ms_per_image": round(image * 1000, 2),
                    "minutes": round(total / 60, 1),
                    "gpu": total / 60 > args.gpu_above,
                }
            )
    out = pd.DataFrame(rows)
    out.to_csv(ROOT / "reports" / "generator_costs.csv", index=False)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU"
    shown = out.assign(gpu=out["gpu"].map({True: "yes", False: ""}))
    cols = ["method", "cap", "images_learnt", "training_steps", "images_drawn", "minutes", "gpu"]
    text = "\n".join(
        [
            "# What a balancing-study cell costs each generator",
            "",
            f"Generated by `uv run python scripts/bench_generators.py` on {machine}: each arm's "
            f"training steps ({TIMED_STEPS} timed) and drawn images ({TIMED_IMAGES} timed) "
            "measured on the real training split, multiplied out for every cap. Minutes are "
            "the generator's share of a cell (training, the held-out FID checks, synthesis); "
            "the classifier's share is the same for every arm. `gpu`: over "
            f"{args.gpu_above:g} minutes here, marked `gpu` in the study file.",
            "",
            "## Minutes per cell",
            "",
            table(cols, shown[cols].astype(str).values.tolist(), ["left"] * 2 + ["right"] * 5),
            "",
        ]
    )
    write_text(ROOT / "reports" / "generator_costs.md", text)
    print(text)


if __name__ == "__main__":
    main()
