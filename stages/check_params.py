"""Stage check_params: validate params.yaml, then write each stage the slice of it that it reads.

It runs first and imports nothing heavy, so a bad value fails here, in well under two seconds,
before DVC removes the outputs of any expensive stage.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pneumogan.core import stage
from pneumogan.core.files import atomic_dir, write_json
from pneumogan.core.params import STAGE_PARAMS, load_params, stage_slice


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    p.add_argument("--out", type=Path, required=True, help="directory for <stage>.json slices")
    args = p.parse_args(argv)
    params = load_params(args.params)
    with atomic_dir(args.out) as tmp:
        for name in STAGE_PARAMS:
            write_json(tmp / f"{name}.json", stage_slice(params, name))
    stage.log.info("params valid; slices for %d stages in %s", len(STAGE_PARAMS), args.out)


if __name__ == "__main__":
    stage.run(main)
