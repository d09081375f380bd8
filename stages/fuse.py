"""Stage fuse: real training images plus GAN, oversampled or no extra minority images."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pneumogan import stage, tracking
from pneumogan.fuse import fuse
from pneumogan.io import atomic_dir, load_split, save_split, write_json
from pneumogan.params import flatten, load_params

log = logging.getLogger("pneumogan.fuse")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--train", type=Path, required=True, help="real training split")
    p.add_argument("--synthetic", type=Path, required=True, help="directory from synthesize")
    p.add_argument("--out", type=Path, required=True, help="directory for the fused train.npz")
    p.add_argument("--metrics", type=Path, required=True, help="composition (json)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    train = load_split(args.train)
    synthetic, _ = load_split(args.synthetic / "synthetic.npz", need_both_classes=False)
    with (
        tracking.stage_run(
            "fuse", flatten({"seed": params.seed, "fuse": params.fuse}), params.study
        ) as run,
        atomic_dir(args.out) as tmp,
    ):
        images, labels, composition = fuse(
            train,
            synthetic,
            method=params.fuse.method,
            target_ratio=params.fuse.target_ratio,
            rng=np.random.default_rng(params.seed),
        )
        save_split(tmp / "train.npz", images, labels)
        write_json(args.metrics, composition)
        run.log_metrics(composition)
        log.info("fused training set: %s", composition)


if __name__ == "__main__":
    stage.run(main)
