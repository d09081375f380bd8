"""What every stage script shares: argument parsing, params, logging and clean failure."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from pneumogan.io import DataError
from pneumogan.params import ParamsError
from pneumogan.runtime import setup_logging

log = logging.getLogger("pneumogan")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p


def run(main: Callable[[Sequence[str] | None], None]) -> None:
    """Run a stage's main; expected failures print one clear message and exit with status 2."""
    setup_logging()
    try:
        main(sys.argv[1:])
    except (ParamsError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
