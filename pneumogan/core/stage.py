"""What every stage script shares: argument parsing, params, logging and clean failure."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pneumogan.core.errors import DataError, ParamsError
from pneumogan.core.progress import setup_logging

log = logging.getLogger("pneumogan")


def parser(description: str) -> argparse.ArgumentParser:
    """Arguments every stage takes: `--params`, its slice of params.yaml (from check_params)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--params", type=Path, required=True, help="this stage's params slice (data/params/*.json)"
    )
    return p


def run(main: Callable[[Sequence[str] | None], None]) -> None:
    """Run a stage's main; expected failures print one clear message and exit with status 2,
    Ctrl-C prints one line and exits with status 130 (128 + SIGINT), as a shell reports it."""
    setup_logging()
    try:
        main(sys.argv[1:])
    except (ParamsError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        name = os.environ.get("DVC_STAGE") or Path(sys.argv[0]).stem
        print(f"interrupted: stage {name} stopped (Ctrl-C)", file=sys.stderr)
        sys.exit(130)
