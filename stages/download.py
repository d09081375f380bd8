"""Stage download: PneumoniaMNIST at data.image_size px, from a local copy or the official URL."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan import source, stage, tracking
from pneumogan.files import atomic_dir, write_json
from pneumogan.params import load_slice

log = logging.getLogger("pneumogan.download")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--out", type=Path, required=True, help="directory for the raw npz")
    args = p.parse_args(argv)
    cfg = load_slice(args.params, "download")
    size = cfg.data.image_size
    # The old copy stays until the new one is whole and valid (the output is `persist`).
    with tracking.stage_run("download", cfg.flat()) as run, atomic_dir(args.out) as tmp:
        prov = source.fetch(size, tmp / source.filename(size))
        write_json(tmp / "provenance.json", dataclasses.asdict(prov))
        run.log_metrics({f"n_{k}": v for k, v in prov.n_samples.items()})
        run.log_artifact(tmp / "provenance.json")
        log.info("%s from %s (official MD5: %s)", source.filename(size), prov.source, prov.official)


if __name__ == "__main__":
    stage.run(main)
