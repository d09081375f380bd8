"""Stage synthesize: exactly the minority images the training split lacks, and their quality.

The quality figures of the minority class keep one shape for every generator; a conditional
generator also draws a probe of every class, measured against that class (`per_class`).
Used only when fuse.method is gan; otherwise it writes an empty synthetic set and trains nothing.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn

from pneumogan.classify.checkpoint import load_classifier
from pneumogan.core import seeds, stage, tracking
from pneumogan.core.choices import LABELS
from pneumogan.core.errors import DataError
from pneumogan.core.files import atomic_dir, write_json
from pneumogan.core.grids import save_grid
from pneumogan.core.params import StageParams, SynthesizeParams, flatten, load_slice
from pneumogan.core.transforms import ImageTransform
from pneumogan.data.balance import minority_class, n_missing
from pneumogan.data.contract import load_split, save_split
from pneumogan.generate import standin
from pneumogan.generate.checkpoint import load_generator
from pneumogan.generate.quality import per_class_report, quality_report
from pneumogan.generate.synthesis import draw, draw_for_fuse, preview

log = logging.getLogger("pneumogan.synthesize")


def run(args: argparse.Namespace, cfg: StageParams) -> None:
    sp = cfg.synthesize
    images, labels = load_split(args.train)
    val_images, val_labels = load_split(args.val, size=images.shape[1])
    G, transform, meta = load_generator(args.model)
    label = meta["label"]
    reference = load_classifier(args.reference, producer="reference")
    if label != minority_class(labels):
        raise DataError(
            f"{args.model} imitates class {label}, but the minority class of "
            f"{args.train} is {minority_class(labels)}; rerun train_gan"
        )
    need = n_missing(labels, cfg.fuse.target_ratio)
    heldout = val_images[val_labels == label]
    asked = label if G.classes else None
    with tracking.stage_run("synthesize", cfg) as run, atomic_dir(args.out) as tmp:
        added, drawn = draw_for_fuse(
            G,
            transform,
            need,
            len(heldout),
            label=asked,
            batch_size=sp.batch_size,
            generator=seeds.torch_generator(cfg.seed, "synthesis"),
        )
        save_split(tmp / "synthetic.npz", added, np.full(need, label))
        # Top half real training images, bottom half synthetic ones, for a side-by-side look.
        save_grid(args.preview, preview(images[labels == label], drawn))
        report = quality_report(
            reference,
            synthetic=drawn,
            train_minority=images[labels == label],
            heldout_minority=heldout,
            heldout_majority=val_images[val_labels != label],
            label=label,
            nearest_k=sp.nearest_k,
            kid_subsets=sp.kid_subsets,
            copy_percentile=sp.copy_percentile,
            rng=seeds.numpy_rng(cfg.seed, "quality"),
        )
        if G.classes:
            report["per_class"] = per_class_report(
                reference,
                {label: drawn, **draw_others(G, transform, label, val_labels, sp, cfg.seed)},
                train_images=images,
                train_labels=labels,
                heldout_images=val_images,
                heldout_labels=val_labels,
                nearest_k=sp.nearest_k,
                kid_subsets=sp.kid_subsets,
                copy_percentile=sp.copy_percentile,
                rng=seeds.numpy_rng(cfg.seed, "quality_per_class"),
            )
        report["kept_epoch"] = meta["epoch"]
        write_json(args.metrics, report)
        run.log_metrics({"n_synthetic": need, **flatten(report)})
        run.log_artifact(args.preview)
        run.log_artifact(args.metrics)
        log.info(
            "%d synthetic %s images; FID %.2f (real held-out %.2f, other class %.2f)",
            need,
            LABELS[label],
            report["synthetic"]["fid"],
            report["real_heldout"]["fid"],
            report["other_class"]["fid"],
        )


def draw_others(
    G: nn.Module,
    transform: ImageTransform,
    label: int,
    val_labels: np.ndarray,
    sp: SynthesizeParams,
    seed: int,
) -> dict[int, np.ndarray]:
    """A conditional generator's probe of each class but `label`, as many images as that
    class has held out, from a stream of their own (so the added images never move)."""
    stream = seeds.torch_generator(seed, "synthesis_probe")
    return {
        c: draw(
            G,
            transform,
            int(np.sum(val_labels == c)),
            label=c,
            batch_size=sp.batch_size,
            generator=stream,
        )
        for c in range(G.classes)
        if c != label
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--model", type=Path, required=True, help="GAN checkpoint")
    p.add_argument("--reference", type=Path, required=True, help="real-only classifier")
    p.add_argument("--train", type=Path, required=True, help="real training split")
    p.add_argument("--val", type=Path, required=True, help="real validation split (held out)")
    p.add_argument("--out", type=Path, required=True, help="directory for synthetic.npz")
    p.add_argument("--metrics", type=Path, required=True, help="synthesis quality (json)")
    p.add_argument("--preview", type=Path, required=True, help="real vs synthetic grid (png)")
    args = p.parse_args(argv)
    cfg = load_slice(args.params, "synthesize")
    if not cfg.enabled:
        images, _ = load_split(args.train)
        with atomic_dir(args.out) as tmp:
            empty = np.zeros((0, *images.shape[1:]), dtype=np.uint8)
            save_split(tmp / "synthetic.npz", empty, np.zeros(0, dtype=np.int64))
        standin.skipped_metrics(args.metrics)
        standin.skipped_image(args.preview)
        log.info("skipped: %s", standin.REASON)
        return
    run(args, cfg)


if __name__ == "__main__":
    stage.run(main)
