"""Stage split: train/val/test in canonical order, small ones carved by patient, train capped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan.core import seeds, stage, tracking
from pneumogan.core.files import atomic_dir, write_json
from pneumogan.core.params import load_slice
from pneumogan.data.balance import class_counts
from pneumogan.data.contract import save_split
from pneumogan.data.split import find_raw, split_parts

log = logging.getLogger("pneumogan.split")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--raw", type=Path, required=True, help="directory written by download")
    p.add_argument("--out", type=Path, required=True, help="directory for {train,val,test}.npz")
    p.add_argument("--metrics", type=Path, required=True, help="class counts per split (json)")
    args = p.parse_args(argv)
    cfg = load_slice(args.params, "split")
    sp = cfg.split
    with tracking.stage_run("split", cfg) as run, atomic_dir(args.out) as tmp:
        rng = seeds.numpy_rng(cfg.seed, "split")
        size = cfg.data.image_size  # a raw file of another size fails here, naming both
        splits, info = split_parts(
            find_raw(args.raw),
            size,
            sp.train_per_class,
            rng,
            sp.keep_ratio,
            min_images=sp.min_images,
            carve_fraction=sp.carve_fraction,
            carve_seed=seeds.int_seed(cfg.seed, "carve") % 2**32,
        )
        for name in info.carved:
            log.info("%s carved out of train by patient (split.carve_fraction)", name)
        what = "identical images" if info.by_image else "patients"
        for pair, n in info.shared.items():
            if n:
                log.warning("%s share %d %s (as the source splits them)", pair, n, what)
        counts = {}
        for name, (images, labels) in splits.items():
            save_split(tmp / f"{name}.npz", images, labels, sources=info.sources[name])
            normal, pneumonia = class_counts(labels).tolist()
            counts[name] = {"normal": normal, "pneumonia": pneumonia, "total": len(labels)}
            log.info(
                "%-5s %5d images (normal %d, pneumonia %d)", name, len(labels), normal, pneumonia
            )
        write_json(args.metrics, counts)
        run.log_metrics({f"{s}_{k}": v for s, c in counts.items() for k, v in c.items()})


if __name__ == "__main__":
    stage.run(main)
