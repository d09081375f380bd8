"""MLflow: one run per stage execution, in a SQLite store at the repo root by default.

A stage logs its slice of params (`StageParams`). Under DVC the stage runs of one `dvc repro`
or `dvc exp run` are nested in one parent run (tagged `stage: pipeline`), which carries every
param of the run. The parent is found again by an id of the invocation, the experiment name
with the PID and start time of the dvc process that runs the stages. It stays RUNNING as long
as that process lives: its first stage starts a watcher (`watch`), a small process in the same
process group, which waits for the dvc process to end and then closes the parent: KILLED when
Ctrl-C reached it or a stage was killed, FAILED when a stage failed, else FINISHED. Every run
records the process behind it (`pneumogan.process`: host, PID and start time); each stage
closes as KILLED this host's runs left RUNNING by a process that is gone (a stage killed
with SIGKILL, a dvc killed with its watcher). Every param, and the `study` that groups runs,
come from what check_params wrote beside the slices (no stage depends on that file, so neither
reruns a stage); params.yaml itself is not read here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import psutil
from mlflow.entities import Param

from pneumogan.core.params import StageParams, flatten

EXPERIMENT = "pneumogan"
INVOCATION_TAG = "pneumogan.invocation"
PROCESS_TAG = "pneumogan.process"  # host:pid:start of the process behind a run (dvc's, a parent's)
WATCHER_TAG = "pneumogan.watcher"  # host:pid:start of the process that closes a parent
PIPELINE = "pipeline"  # `stage` tag of the parent runs
SHELLS = {"sh", "bash", "dash", "zsh", "fish", "ksh"}  # what DVC may run a stage's cmd in
POLL_S = 0.5  # how often the watcher looks for the dvc process
QUIET = {  # MLflow's own console output, off unless the environment asks for it
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # "View run ... at", per run closed
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # "Downloading artifacts" bars
}
NOISY = ("alembic", "mlflow.store.db.utils", "mlflow.tracking")  # INFO lines on every run


def repo_root() -> Path:
    """The main repo root: DVC sets DVC_ROOT to it, for queued and --temp experiments too."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def quiet() -> None:
    """Keep MLflow's chatter (links, progress bars, INFO lines) off a stage's console."""
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


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


# ---------------------------------------------------------------- processes behind runs


def process_key(proc: psutil.Process) -> str:
    """`host:pid:start`, which names one process for as long as the host runs."""
    return f"{socket.gethostname()}:{proc.pid}:{proc.create_time():.3f}"


def alive(key: str) -> bool:
    """Whether the process `key` names still runs; True for another host's, which this one
    cannot judge. A zombie (exited, not yet reaped) has ended."""
    try:
        host, pid, started = key.rsplit(":", 2)
        if host != socket.gethostname():
            return True
        proc = psutil.Process(int(pid))
        return f"{proc.create_time():.3f}" == started and proc.status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.Error):
        return False


def dvc_process() -> psutil.Process | None:
    """The dvc process running this stage, or None outside DVC.

    DVC sets DVC_STAGE for a stage's command and runs it through a shell; the first ancestor
    that is not a shell is the dvc process, the same one for every stage it runs.
    """
    if not os.environ.get("DVC_STAGE"):
        return None
    try:
        proc = psutil.Process().parent()
        while proc is not None and proc.name() in SHELLS:
            proc = proc.parent()
        if proc is not None:
            proc.create_time()
    except psutil.Error:
        return None
    return proc


def invocation(proc: psutil.Process | None = None) -> str | None:
    """An id of the dvc command running this stage (`proc`, by default found), None outside."""
    proc = proc or dvc_process()
    if proc is None:
        return None
    return f"{os.environ.get('DVC_EXP_NAME', 'workspace')}:{proc.pid}:{proc.create_time():.3f}"


# ---------------------------------------------------------------- the parent run


def parent_run(
    client: Any, experiment_id: str, key: str, tags: Mapping[str, str], every: Mapping[str, Any]
) -> Any:  # mlflow.entities.Run
    """This invocation's parent run; its first stage creates it, with `every` param."""
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{INVOCATION_TAG}` = '{key}'", max_results=1
    )
    if found:
        return found[0]
    name = os.environ.get("DVC_EXP_NAME") or "dvc repro"
    run = client.create_run(
        experiment_id, run_name=name, tags={**tags, "stage": PIPELINE, INVOCATION_TAG: key}
    )
    params = [Param(k, str(v)) for k, v in flatten(every).items()]
    for i in range(0, len(params), 100):  # MLflow's batch limit
        client.log_batch(run.info.run_id, params=params[i : i + 100])
    return client.get_run(run.info.run_id)


# What the watcher runs: its SIGINT handler first (Ctrl-C in the terminal reaches the whole
# process group, dvc's, the stage's and the watcher's), then this package, whose stage copy may
# live in a temp directory that DVC removes when a --temp or queued experiment ends.
_WATCHER = """\
import signal, sys
interrupted = []
signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
sys.path.insert(0, sys.argv[1])
from pneumogan.core import tracking
tracking.watch(*sys.argv[2:], interrupted=interrupted)
"""


def start_watcher(uri: str, parent_id: str, dvc_key: str) -> psutil.Process:
    """Start `watch` for a parent, in this process group, away from the console."""
    package_root = str(Path(__file__).resolve().parents[2])
    cmd = [sys.executable, "-c", _WATCHER, package_root, uri, parent_id, dvc_key]
    main = threading.current_thread() is threading.main_thread()
    # Ignored SIGINT is inherited: Ctrl-C cannot end the watcher before its handler is set.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=repo_root(),
        )
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    return psutil.Process(proc.pid)


def keep_watched(client: Any, parent: Any, dvc: psutil.Process, uri: str) -> None:
    """The parent RUNNING while a stage of its invocation runs, and a live watcher on it."""
    run_id = parent.info.run_id
    if parent.info.status != "RUNNING":
        client.update_run(run_id, status="RUNNING")
    watcher = parent.data.tags.get(WATCHER_TAG)
    if watcher is None or not alive(watcher):
        started = start_watcher(uri, run_id, process_key(dvc))
        client.set_tag(run_id, WATCHER_TAG, process_key(started))


def watch(uri: str, parent_id: str, dvc_key: str, interrupted: Sequence[bool] = ()) -> None:
    """The watcher's body: wait for the dvc process to end, then close the parent run.

    `interrupted` fills up when SIGINT (Ctrl-C) reaches the watcher.
    """
    quiet()
    while alive(dvc_key):
        time.sleep(POLL_S)
    close_parent(mlflow.MlflowClient(uri), parent_id, interrupted=bool(interrupted), wait=True)


def close_parent(client: Any, parent_id: str, interrupted: bool, wait: bool) -> str | None:
    """Close a parent whose dvc process has ended, and return its status.

    Its stage runs left RUNNING (their process killed) are closed first, as KILLED. The parent
    is KILLED when interrupted or a stage was killed, FAILED when a stage failed, else
    FINISHED. A stage still running (its dvc killed, not itself) is waited for with `wait`;
    without, the parent stays open and None is returned. A parent closed already is left.
    """
    parent = client.get_run(parent_id)
    if parent.info.status != "RUNNING":  # closed meanwhile, by its watcher
        return parent.info.status
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
        max_results=1000,
    )
    statuses = set()
    for run in children:
        status = run.info.status
        if status == "RUNNING":
            key = run.data.tags.get(PROCESS_TAG, "")
            if alive(key) and not wait:
                return None
            while alive(key):
                time.sleep(POLL_S)
            status = client.get_run(run.info.run_id).info.status
            if status == "RUNNING":
                status = "KILLED"
                client.set_terminated(run.info.run_id, status=status)
        statuses.add(status)
    if interrupted or "KILLED" in statuses:
        status = "KILLED"
    else:
        status = "FAILED" if "FAILED" in statuses else "FINISHED"
    client.set_terminated(parent_id, status=status)
    return status


def close_stale(client: Any) -> None:
    """Close as KILLED this host's runs left RUNNING by a process that is gone: a stage run
    whose stage was killed, a parent whose dvc process and watcher were both killed."""
    found = client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT}%'")
    if not found:
        return
    runs = client.search_runs(
        [e.experiment_id for e in found],
        filter_string=f"attributes.status = 'RUNNING' and "
        f"tags.`{PROCESS_TAG}` LIKE '{socket.gethostname()}:%'",
        max_results=1000,
    )
    gone = [r for r in runs if not alive(r.data.tags[PROCESS_TAG])]
    for run in sorted(gone, key=lambda r: r.data.tags.get("stage") == PIPELINE):  # stages first
        if run.data.tags.get("stage") != PIPELINE:
            client.set_terminated(run.info.run_id, status="KILLED")
        elif not alive(run.data.tags.get(WATCHER_TAG, "")):
            close_parent(client, run.info.run_id, interrupted=True, wait=False)


# ---------------------------------------------------------------- a stage's run


def run_name(stage: str) -> str:
    """A stage run's name: its DVC experiment's name (`workspace` outside one), then the stage."""
    return f"{os.environ.get('DVC_EXP_NAME') or 'workspace'} · {stage}"


@contextlib.contextmanager
def stage_run(stage: str, cfg: StageParams) -> Iterator[StageRun]:
    """Open an MLflow run tagged with stage, DVC experiment and commit, with the slice `cfg`'s
    params logged. It ends FINISHED, FAILED on an error, KILLED on Ctrl-C.

    Runs of a study (top-level `study` param) go to their own MLflow experiment, tagged
    `study`, so they can be browsed together.
    """
    quiet()
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
    close_stale(client)
    parent = None
    dvc = dvc_process()
    if dvc is not None:
        experiment_id = mlflow.get_experiment_by_name(name).experiment_id
        run = parent_run(
            client, experiment_id, invocation(dvc), {**tags, PROCESS_TAG: process_key(dvc)}, every
        )
        keep_watched(client, run, dvc, uri)
        parent = run.info.run_id
    tags[PROCESS_TAG] = process_key(psutil.Process())
    # Named "<experiment> · <stage>": four evaluate runs of four experiments read apart.
    mlflow.start_run(run_name=run_name(stage), tags=tags, parent_run_id=parent)
    status = "FAILED"
    try:
        mlflow.log_params(cfg.flat())
        yield StageRun(mlflow)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status)
