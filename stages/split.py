"""Stage split: official train/val/test in canonical order, real train optionally capped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan import data, stage, tracking
from pneumogan.fuse import class_counts
from pneumogan.io import DataError, atomic_dir, save_split, write_json
from pneumogan.params import flatten, load_params

log = logging.getLogger("pneumogan.split")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--raw", type=Path, required=True, help="directory written by download")
    p.add_argument("--out", type=Path, required=True, help="directory for {train,val,test}.npz")
    p.add_argument("--metrics", type=Path, required=True, help="class counts per split (json)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    raw = sorted(args.raw.glob(f"{data.FLAG}*.npz"))
    if len(raw) != 1:
        raise DataError(
            f"{args.raw}: expected one {data.FLAG}*.npz, found {len(raw)}; "
            "rerun download (dvc repro download)"
        )
    sp = params.split
    logged = flatten({"seed": params.seed, "split": sp})
    with (
        tracking.stage_run("split", logged, params.study) as run,
        atomic_dir(args.out) as tmp,
    ):
        splits = data.split_raw(raw[0], None, sp.train_per_class, params.seed, sp.keep_ratio)
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
