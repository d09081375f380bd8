"""Progress bars and log lines that do not collide: while a bar runs, log records go through
tqdm's own logging redirect (`tqdm.contrib.logging.logging_redirect_tqdm`), above the bar."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

FORMAT = "%(asctime)s %(name)s: %(message)s"
DATEFMT = "%H:%M:%S"


class _Bar(tqdm):
    """A tqdm bar whose iteration runs inside `logging_redirect_tqdm`: the root logger's
    stderr handler is swapped for tqdm's (same format) until the loop ends."""

    def __iter__(self) -> Iterator:
        with logging_redirect_tqdm(tqdm_class=tqdm):
            yield from super().__iter__()


def progress(iterable: Iterable, **kwargs) -> tqdm:
    """A tqdm bar that stays quiet when stderr is not a terminal (CI, dvc exp --queue logs)."""
    return _Bar(iterable, disable=not sys.stderr.isatty(), leave=False, **kwargs)


def setup_logging() -> None:
    """INFO and above to stderr, one line per record; `progress` bars redirect it above them."""
    logging.basicConfig(
        level=logging.INFO, format=FORMAT, datefmt=DATEFMT, stream=sys.stderr, force=True
    )
