"""Stage check_params: validate params.yaml, then write each stage the slice of it that it reads.

It runs first, so a bad value fails here, in seconds, before DVC removes the outputs of any
expensive stage. Beside the slices it writes every param (`PIPELINE_FILE`), which no stage
depends on: MLflow's parent run and study grouping read it, so `study` reruns nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

# Imported for what they register: train.arch and gan.variant are checked against the networks
# and generators these modules add to the registries (pneumogan.core.registry).
from pneumogan.classify import nets as _networks  # noqa: F401
from pneumogan.core import stage
from pneumogan.core.files import atomic_dir, write_json
from pneumogan.core.params import PIPELINE_FILE, STAGE_PARAMS, load_params, stage_slice
from pneumogan.generate import nets as _generators  # noqa: F401


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    p.add_argument("--out", type=Path, required=True, help="directory for <stage>.json slices")
    args = p.parse_args(argv)
    params = load_params(args.params)
    with atomic_dir(args.out) as tmp:
        for name in STAGE_PARAMS:
            write_json(tmp / f"{name}.json", stage_slice(params, name))
        write_json(tmp / PIPELINE_FILE, params.model_dump(mode="json"))
    stage.log.info("params valid; slices for %d stages in %s", len(STAGE_PARAMS), args.out)


if __name__ == "__main__":
    stage.run(main)
