"""Stage split: official train/val/test in canonical order, real train optionally capped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan import seeds, source, stage, tracking
from pneumogan.balance import class_counts
from pneumogan.contract import save_split
from pneumogan.errors import DataError
from pneumogan.files import atomic_dir, write_json
from pneumogan.params import load_slice
from pneumogan.split import split_raw

log = logging.getLogger("pneumogan.split")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--raw", type=Path, required=True, help="directory written by download")
    p.add_argument("--out", type=Path, required=True, help="directory for {train,val,test}.npz")
    p.add_argument("--metrics", type=Path, required=True, help="class counts per split (json)")
    args = p.parse_args(argv)
    cfg = load_slice(args.params, "split")
    raw = sorted(args.raw.glob(f"{source.FLAG}*.npz"))
    if len(raw) != 1:
        raise DataError(
            f"{args.raw}: expected one {source.FLAG}*.npz, found {len(raw)}; "
            "rerun download (dvc repro download)"
        )
    sp = cfg.split
    with tracking.stage_run("split", cfg.flat()) as run, atomic_dir(args.out) as tmp:
        rng = seeds.numpy_rng(cfg.seed, "split")
        size = cfg.data.image_size  # a raw file of another size fails here, naming both
        splits = split_raw(raw[0], size, sp.train_per_class, rng, sp.keep_ratio)
        counts = {}
        for name, (images, labels) in splits.items():
            save_split(tmp / f"{name}.npz", images, labels)
            normal, pneumonia = class_counts(labels).tolist()
            counts[name] = {"normal": normal, "pneumonia": pneumonia, "total": len(labels)}
            log.info(
                "%-5s %5d images (normal %d, pneumonia %d)", name, len(labels), normal, pneumonia
            )
        write_json(args.metrics, counts)
        run.log_metrics({f"{s}_{k}": v for s, c in counts.items() for k, v in c.items()})


if __name__ == "__main__":
    stage.run(main)
