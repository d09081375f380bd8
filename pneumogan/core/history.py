"""The per-epoch recorder: a log line and MLflow metrics as each epoch ends, then a CSV."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pneumogan.core.files import write_table


class History:
    """Called with (epoch, stats) by the training loops; writes DVC plot tables at the end."""

    def __init__(self, run: Any, logger: logging.Logger) -> None:
        self.run, self.log, self.rows = run, logger, []

    def __call__(self, epoch: int, stats: dict[str, float]) -> None:
        self.rows.append({"epoch": epoch, **stats})
        self.run.log_metrics(stats, step=epoch)
        self.log.info("epoch %3d  %s", epoch, "  ".join(f"{k} {v:.4f}" for k, v in stats.items()))

    def save(self, path: Path, columns: list[str]) -> None:
        """Write epoch plus `columns` (epochs that lack one of them are left out); log it."""
        import pandas as pd  # only when saving: importing the core stays light

        table = pd.DataFrame(self.rows, columns=["epoch", *columns])[["epoch", *columns]]
        write_table(path, table.dropna())
        self.run.log_artifact(path)
