"""Stage fuse: real training images plus GAN, oversampled or no extra minority images."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan.core import seeds, stage, tracking
from pneumogan.core.files import atomic_dir, write_json
from pneumogan.core.params import load_slice
from pneumogan.data.contract import load_split, save_split
from pneumogan.data.fuse import fuse, image_weights

log = logging.getLogger("pneumogan.fuse")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--train", type=Path, required=True, help="real training split")
    p.add_argument("--synthetic", type=Path, required=True, help="directory from synthesize")
    p.add_argument("--out", type=Path, required=True, help="directory for the fused train.npz")
    p.add_argument("--metrics", type=Path, required=True, help="composition (json)")
    args = p.parse_args(argv)
    cfg = load_slice(args.params, "fuse")
    train = load_split(args.train)
    synthetic, _ = load_split(args.synthetic / "synthetic.npz", need_both_classes=False)
    with tracking.stage_run("fuse", cfg) as run, atomic_dir(args.out) as tmp:
        images, labels, composition = fuse(
            train,
            synthetic,
            method=cfg.fuse.method,
            target_ratio=cfg.fuse.target_ratio,
            rng=seeds.numpy_rng(cfg.seed, "fuse"),
        )
        # weighted: nothing added; each image carries its class's weight in the training loss
        weights = (
            image_weights(labels, cfg.fuse.target_ratio) if cfg.fuse.method == "weighted" else None
        )
        save_split(tmp / "train.npz", images, labels, weights)
        write_json(args.metrics, composition)
        run.log_metrics(composition)
        log.info(
            "fused training set: %d images, %d real normal + %d real pneumonia + %d added (%s)",
            composition["total"],
            composition["real_normal"],
            composition["real_pneumonia"],
            composition["added_minority"],
            cfg.fuse.method,
        )


if __name__ == "__main__":
    stage.run(main)
