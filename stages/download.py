"""Stage download: PneumoniaMNIST at data.size px, from a local copy or the official URL."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan import data, stage, tracking
from pneumogan.io import atomic_dir, write_json
from pneumogan.params import flatten, load_params

log = logging.getLogger("pneumogan.download")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--out", type=Path, required=True, help="directory for the raw npz")
    args = p.parse_args(argv)
    params = load_params(args.params)
    with (
        tracking.stage_run("download", flatten({"data": params.data}), params.study) as run,
        atomic_dir(args.out) as tmp,
    ):
        name = data.official(params.data.size)["filename"]
        prov = data.fetch(params.data.size, tmp / name)
        write_json(tmp / "provenance.json", dataclasses.asdict(prov))
        run.log_metrics({f"n_{k}": v for k, v in prov.n_samples.items()})
        run.log_artifact(tmp / "provenance.json")
        log.info("%s from %s (official MD5: %s)", name, prov.source, prov.official)


if __name__ == "__main__":
    stage.run(main)
