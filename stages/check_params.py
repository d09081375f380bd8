"""Stage check_params: validate params.yaml, then write each stage the slice of it that it reads.

It runs first, so a bad value fails here, in seconds, before DVC removes the outputs of any
expensive stage. Beside the slices it writes every param (`PIPELINE_FILE`), which no stage
depends on: MLflow's parent run and study grouping read it, so `study` reruns nothing.

It also checks that `data.path` exists. That path is a dependency of download (`${data.path}`
in dvc.yaml), and DVC hashes a stage's dependencies when it reaches the stage, before its
command runs: a missing one stops `dvc repro` with a bare "failed to reproduce 'download':
[Errno 2] No such file or directory". check_params runs before download, so a new data.path
that is not there fails here with the fix. (When params are unchanged DVC skips this stage,
so a data.path deleted after a good run still gets DVC's bare message.)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

# Imported for what they register: train.arch and gan.variant are checked against the networks
# and generators these modules add to the registries (pneumogan.core.registry).
from pneumogan.classify import nets as _networks  # noqa: F401
from pneumogan.core import stage
from pneumogan.core.errors import ParamsError
from pneumogan.core.files import atomic_dir, write_json
from pneumogan.core.params import (
    PIPELINE_FILE,
    STAGE_PARAMS,
    DataParams,
    load_params,
    stage_slice,
)
from pneumogan.generate import nets as _generators  # noqa: F401


def check_data_path(data: DataParams, params_file: Path) -> None:
    """Raise ParamsError when data.path is missing, or is not what `data.source` reads there."""
    path = Path(data.path)
    where = f"{params_file}: data.path = {data.path!r}"
    if data.source == "folder":
        fix = (
            "Point data.path at the root of your tree of X-rays (class folders, or train/, "
            "val/ and test/ holding them): dvc exp run -S data.path=/path/to/chest_xray"
        )
    else:
        fix = (
            f"Create the folder (mkdir -p {data.path}; it may stay empty, and the MedMNIST "
            f"file is then downloaded), or point data.path at the folder holding {data.flag}"
            f"{'' if data.image_size == 28 else f'_{data.image_size}'}.npz"
        )
    if not path.exists():
        raise ParamsError(
            f"{where}: no such folder ({path.absolute()}). download depends on it, and DVC "
            f"stops on a missing dependency before the stage runs. {fix}"
        )
    if not path.is_dir():
        if data.source == "medmnist":  # the folder is searched for the file, not the file read
            fix = f"Set data.path to the folder holding it, {str(path.parent)!r}"
        raise ParamsError(f"{where}: a file, not a folder. {fix}")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    p.add_argument("--out", type=Path, required=True, help="directory for <stage>.json slices")
    args = p.parse_args(argv)
    params = load_params(args.params)
    check_data_path(params.data, args.params)
    with atomic_dir(args.out) as tmp:
        for name in STAGE_PARAMS:
            write_json(tmp / f"{name}.json", stage_slice(params, name))
        write_json(tmp / PIPELINE_FILE, params.model_dump(mode="json"))
    stage.log.info("params valid; slices for %d stages in %s", len(STAGE_PARAMS), args.out)


if __name__ == "__main__":
    stage.run(main)
