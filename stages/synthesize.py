"""Stage synthesize: exactly the minority images the training split lacks, and their quality."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pneumogan import gan, stage, tracking
from pneumogan.classifier import load_classifier
from pneumogan.fuse import minority_class, n_missing
from pneumogan.io import LABELS, DataError, atomic_dir, load_split, save_split, write_json
from pneumogan.params import flatten, load_params
from pneumogan.plots import save_grid
from pneumogan.quality import quality_report
from pneumogan.runtime import seed_everything

log = logging.getLogger("pneumogan.synthesize")


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
    params = load_params(args.params)
    sp = params.synthesize
    images, labels = load_split(args.train)
    val_images, val_labels = load_split(args.val, size=images.shape[1])
    G, meta = gan.load_generator(args.model)
    label = meta["label"]
    reference = load_classifier(args.reference)
    if label != minority_class(labels):
        raise DataError(
            f"{args.model} imitates class {label}, but the minority class of "
            f"{args.train} is {minority_class(labels)}; rerun train_gan"
        )
    n = n_missing(labels, params.fuse.target_ratio)
    generator = seed_everything(params.seed)
    heldout = val_images[val_labels == label]
    logged = flatten(
        {"seed": params.seed, "synthesize": sp, "fuse.target_ratio": params.fuse.target_ratio}
    )
    with tracking.stage_run("synthesize", logged, params.study) as run, atomic_dir(args.out) as tmp:
        # Quality is measured on at least as many images as the held-out probe needs, drawn
        # from the same generator stream; the first n are the ones fuse will use.
        drawn = gan.synthesize(
            G, max(n, len(heldout)), batch_size=sp.batch_size, generator=generator
        )
        save_split(tmp / "synthetic.npz", drawn[:n], np.full(n, label))
        # Top half real training images, bottom half synthetic ones, for a side-by-side look.
        real = images[labels == label][:32]
        save_grid(args.preview, gan.to_unit(np.concatenate([real, drawn[: 64 - len(real)]])))
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
            seed=params.seed,
        )
        report["generator"] = {"variant": meta["variant"], "kept_epoch": meta["epoch"]}
        write_json(args.metrics, report)
        run.log_metrics({"n_synthetic": n, **flatten(report)})
        run.log_artifact(args.preview)
        run.log_artifact(args.metrics)
        log.info(
            "%d synthetic %s images; FID %.2f (real held-out %.2f, other class %.2f)",
            n,
            LABELS[label],
            report["synthetic"]["fid"],
            report["real_heldout"]["fid"],
            report["other_class"]["fid"],
        )


if __name__ == "__main__":
    stage.run(main)
