"""MLflow: one run per stage execution, in a SQLite store at the repo root by default.

A stage logs its slice of params (`StageParams`). Under DVC the stage runs of one `dvc repro`
or `dvc exp run` are nested in one parent run (tagged `stage: pipeline`), which carries every
param of the run and ends with the last stage that ran: FINISHED, or FAILED when a stage
failed. The parent is found again by an id of the invocation, the experiment name with the PID
and start time of the dvc process that runs the stages. Every param, and the `study` that
groups runs, come from what check_params wrote beside the slices (no stage depends on that
file, so neither reruns a stage); params.yaml itself is not read here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import psutil
from mlflow.entities import Param

from pneumogan.core.params import StageParams, flatten

EXPERIMENT = "pneumogan"
INVOCATION_TAG = "pneumogan.invocation"
PIPELINE = "pipeline"  # `stage` tag of the parent runs
SHELLS = {"sh", "bash", "dash", "zsh", "fish", "ksh"}  # what DVC may run a stage's cmd in


def repo_root() -> Path:
    """The main repo root: DVC sets DVC_ROOT to it, for queued and --temp experiments too."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def git_commit(root: Path) -> str:
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        return os.environ["DVC_EXP_BASELINE_REV"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


class StageRun:
    """Thin handle on the active MLflow run, so stages never import mlflow themselves."""

    def __init__(self, mlflow_module: Any) -> None:
        self._mlflow = mlflow_module

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        self._mlflow.log_metrics(clean, step=step)

    def set_tag(self, key: str, value: object) -> None:
        self._mlflow.set_tag(key, str(value))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self._mlflow.log_artifacts(str(path), artifact_path=artifact_path or path.name)
        elif path.is_file():
            self._mlflow.log_artifact(str(path), artifact_path=artifact_path)


def experiment_name(study: str | None) -> str:
    """MLflow experiment of a run: `pneumogan`, or `pneumogan-study-<name>` for a study's runs."""
    return EXPERIMENT if study is None else f"{EXPERIMENT}-study-{study}"


def invocation() -> str | None:
    """An id of the dvc command running this stage, or None outside DVC.

    DVC sets DVC_STAGE for a stage's command and runs it through a shell; the first ancestor
    that is not a shell is the dvc process, the same one for every stage it runs.
    """
    if not os.environ.get("DVC_STAGE"):
        return None
    try:
        proc = psutil.Process().parent()
        while proc is not None and proc.name() in SHELLS:
            proc = proc.parent()
        if proc is None:
            return None
        started = proc.create_time()
    except psutil.Error:
        return None
    return f"{os.environ.get('DVC_EXP_NAME', 'workspace')}:{proc.pid}:{started:.3f}"


def parent_run(
    client: Any, experiment_id: str, key: str, tags: Mapping[str, str], every: Mapping[str, Any]
) -> str:
    """The id of this invocation's parent run; its first stage creates it, with `every` param."""
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{INVOCATION_TAG}` = '{key}'", max_results=1
    )
    if found:
        return found[0].info.run_id
    name = os.environ.get("DVC_EXP_NAME") or "dvc repro"
    run = client.create_run(
        experiment_id, run_name=name, tags={**tags, "stage": PIPELINE, INVOCATION_TAG: key}
    )
    params = [Param(k, str(v)) for k, v in flatten(every).items()]
    for i in range(0, len(params), 100):  # MLflow's batch limit
        client.log_batch(run.info.run_id, params=params[i : i + 100])
    return run.info.run_id


@contextlib.contextmanager
def stage_run(stage: str, cfg: StageParams) -> Iterator[StageRun]:
    """Open an MLflow run tagged with stage, DVC experiment and commit, with the slice `cfg`'s
    params logged.

    Runs of a study (top-level `study` param) go to their own MLflow experiment, tagged
    `study`, so they can be browsed together.
    """
    for noisy in ("alembic", "mlflow.store.db.utils", "mlflow.tracking"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    every = cfg.pipeline()  # every param of the run; {} beside a slice written by hand
    study = every.get("study") if isinstance(every.get("study"), str) else None
    root = repo_root()
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    name = experiment_name(study)
    if mlflow.get_experiment_by_name(name) is None:
        # Pin artifacts to the repo root; the default is relative to the cwd, which is a
        # throw-away directory for queued and --temp experiments.
        location = (root / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # created concurrently
            mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)
    tags = {
        "stage": stage,
        "dvc_experiment": os.environ.get("DVC_EXP_NAME", "workspace"),
        "git_commit": git_commit(root),
    }
    if study is not None:
        tags["study"] = study
    client = mlflow.MlflowClient()
    key = invocation()
    parent = None
    if key is not None:
        experiment_id = mlflow.get_experiment_by_name(name).experiment_id
        parent = parent_run(client, experiment_id, key, tags, every)
    status = "FAILED"
    try:
        with mlflow.start_run(run_name=stage, tags=tags, parent_run_id=parent):
            mlflow.log_params(cfg.flat())
            yield StageRun(mlflow)
        status = "FINISHED"
    finally:
        if parent is not None:  # the parent ends with its latest stage
            client.set_terminated(parent, status=status)
