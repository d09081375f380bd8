"""Progress bars and log lines that do not collide: log records go through tqdm.write."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from tqdm import tqdm


def progress(iterable: Iterable, **kwargs) -> tqdm:
    """A tqdm bar that stays quiet when stderr is not a terminal (CI, dvc exp --queue logs)."""
    return tqdm(iterable, disable=not sys.stderr.isatty(), leave=False, **kwargs)


class TqdmHandler(logging.Handler):
    """Writes each record above any active bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except (OSError, ValueError):  # stderr closed: nothing left to tell
            self.handleError(record)


def setup_logging() -> None:
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
