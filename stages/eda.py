"""Stage eda: per split and class, counts, pixel intensities, sample grids and original sizes."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan.core import seeds, stage, tracking
from pneumogan.core.errors import DataError
from pneumogan.core.files import write_json, write_table
from pneumogan.core.params import load_slice
from pneumogan.data.contract import SPLITS, load_split, read_arrays
from pneumogan.data.split import find_raw
from pneumogan.report import eda

log = logging.getLogger("pneumogan.eda")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--raw", type=Path, required=True, help="directory written by download")
    p.add_argument("--split", type=Path, required=True, help="directory written by split")
    p.add_argument("--out", type=Path, required=True, help="directory for the figures and tables")
    p.add_argument("--metrics", type=Path, required=True, help="the summary (json)")
    args = p.parse_args(argv)
    cfg = load_slice(args.params, "eda")
    size = cfg.data.image_size
    try:
        classes = json.loads((args.raw / "provenance.json").read_text())["classes"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(
            f"{args.raw / 'provenance.json'}: no class names ({type(err).__name__}); this is the "
            "download stage's output: rerun it (dvc repro -f download)"
        ) from None
    splits = {s: load_split(args.split / f"{s}.npz", size=size) for s in SPLITS}
    raw = read_arrays(find_raw(args.raw))
    with tracking.stage_run("eda", cfg) as run:
        summary = eda.summary(splits, classes)
        write_json(args.metrics, summary)
        write_table(args.out / "counts.csv", eda.counts_table(splits, classes))
        table = eda.intensity_table(splits, cfg.eda.bins)
        write_table(args.out / "intensity.csv", table)
        eda.intensity_figure(args.out / "intensity.png", table, classes)
        rng = seeds.numpy_rng(cfg.seed, "eda")
        eda.samples_figure(
            args.out / "samples.png", splits, classes, cfg.eda.samples_per_class, rng
        )
        eda.sizes_figure(args.out / "sizes.png", raw, classes, size)
        run.log_metrics(
            {f"{s}_minority_to_majority": row["minority_to_majority"] for s, row in summary.items()}
        )
        run.log_artifact(args.metrics)
        run.log_artifact(args.out)
        for s, row in summary.items():
            log.info(
                "%-5s %s",
                s,
                ", ".join(f"{c} {row[c]['images']}" for c in classes)
                + f" (ratio {row['minority_to_majority']:.3f})",
            )


if __name__ == "__main__":
    stage.run(main)
