"""Stage synthesize: exactly the minority images the training split lacks for the target ratio."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pneumogan import gan, stage, tracking
from pneumogan.fuse import minority_class, n_missing
from pneumogan.io import LABELS, DataError, atomic_dir, load_split, save_split
from pneumogan.params import load_params
from pneumogan.plots import save_grid
from pneumogan.runtime import seed_everything

log = logging.getLogger("pneumogan.synthesize")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--model", type=Path, required=True, help="GAN checkpoint")
    p.add_argument("--train", type=Path, required=True, help="real training split (counts)")
    p.add_argument("--out", type=Path, required=True, help="directory for synthetic.npz")
    args = p.parse_args(argv)
    params = load_params(args.params)
    _, labels = load_split(args.train)
    G, label = gan.load_generator(args.model)
    if label != minority_class(labels):
        raise DataError(
            f"{args.model} imitates class {label}, but the minority class of "
            f"{args.train} is {minority_class(labels)}; rerun train_gan"
        )
    n = n_missing(labels, params.fuse.target_ratio)
    generator = seed_everything(params.seed)
    logged = {
        "seed": params.seed,
        "synthesize.batch_size": params.synthesize.batch_size,
        "fuse.target_ratio": params.fuse.target_ratio,
    }
    with tracking.stage_run("synthesize", logged) as run, atomic_dir(args.out) as tmp:
        images = gan.synthesize(G, n, batch_size=params.synthesize.batch_size, generator=generator)
        save_split(tmp / "synthetic.npz", images, np.full(n, label))
        if n:
            save_grid(tmp / "preview.png", gan.to_unit(images[:64]))
        run.log_metrics({"n_synthetic": n})
        run.log_artifact(tmp / "preview.png")
        log.info("%d synthetic %s images", n, LABELS[label])


if __name__ == "__main__":
    stage.run(main)
