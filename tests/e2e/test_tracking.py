"""The parent MLflow run of a `dvc repro` through a run, a failure, Ctrl-C and SIGKILL.

A two-stage pipeline of probes (each one MLflow run through `tracking.stage_run`, as every
stage of the real pipeline) in a temp repo with the project's code: fast, and each probe can
fail, hang, or write down the parent's status as it sees it while it runs.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_repo, sh

pytestmark = pytest.mark.slow
DVC = [sys.executable, "-m", "dvc"]
B = [*DVC, "repro", "-s", "b"]  # stage b alone: one stage is enough where a stage ends badly

PROBE = '''"""A probe stage: one MLflow run; fails, hangs or writes its parent's status."""
import os
import time
from pathlib import Path

import mlflow

from pneumogan.core import stage, tracking
from pneumogan.core.params import load_slice


def main(argv):
    name, out = argv
    with tracking.stage_run(name, load_slice(Path("data/params/download.json"), "download")):
        client = mlflow.MlflowClient()
        me = client.get_run(mlflow.active_run().info.run_id)
        parent = client.get_run(me.data.tags["mlflow.parentRunId"])
        if os.environ.get("PROBE_FAIL") == name:
            raise RuntimeError("probe failed")
        if os.environ.get("PROBE_HANG") == name:
            Path("hanging").write_text(str(os.getpid()))
            for _ in range(3000):  # short sleeps: a SIGINT taken by another thread still lands
                time.sleep(0.1)
        Path(out).write_text(parent.info.status)


if __name__ == "__main__":
    stage.run(main)
'''

DVC_YAML = """\
stages:
  a:
    cmd: python probe.py a a.txt
    outs: [a.txt]
  b:
    cmd: python probe.py b b.txt
    deps: [a.txt]
    outs: [b.txt]
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory, tiny_raw_dir):
    repo, env = make_repo(tmp_path_factory.mktemp("tracking"), tiny_raw_dir)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "probe.py").write_text(PROBE)
    sh([sys.executable, "-m", "stages.check_params", "--out", "data/params"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "probes"], repo, env)
    return repo, env


def client(repo):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def runs(repo) -> tuple[object, dict]:
    """The newest parent run and its stage runs by stage."""
    c = client(repo)
    exp = c.get_experiment_by_name("pneumogan").experiment_id
    (parent,) = c.search_runs([exp], "tags.stage = 'pipeline'", order_by=["start_time DESC"])[:1]
    children = c.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return parent, {r.data.tags["stage"]: r.info.status for r in children}


def settled(repo, run_id: str, timeout: float = 600) -> str:
    """The run's status once its watcher has closed it (it does so after dvc exits)."""
    deadline = time.monotonic() + timeout
    while (status := client(repo).get_run(run_id).info.status) == "RUNNING":
        assert time.monotonic() < deadline, f"run {run_id} still RUNNING after {timeout} s"
        time.sleep(0.5)
    return status


STARTED: list[subprocess.Popen] = []  # every hanging dvc of this module, killed at its end


@pytest.fixture(autouse=True)
def no_leftover_dvc():
    """A dvc a failed test left hanging is killed with its group, so that its lock on b.txt
    does not fail the tests after it."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def ended(proc: subprocess.Popen, timeout: float) -> str:
    """`proc`'s output once it exits; past `timeout`, a failure that shows what each process of
    its group was doing (the timeout catches a hang: two test workers share two cores in CI)."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        ps = subprocess.run(
            ["ps", "-o", "pid,ppid,stat,wchan:24,etime,args", "-g", str(proc.pid)],
            capture_output=True,
            text=True,
        ).stdout
        pytest.fail(f"dvc still running {timeout:g} s after the signal; its group:\n{ps}")


def signal_masks(pid: int) -> str:
    """The kernel's view of a process's signals (blocked, ignored, caught; SIGINT is bit 2)
    and its process group, for a failure message."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    masks = [line for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt"))]
    return f"pgid {os.getpgid(pid)}, " + ", ".join(masks)


def hang_in_b(repo, env) -> subprocess.Popen:
    """`dvc repro` of stage b in its own process group (a terminal's foreground job), once b
    hangs."""
    (repo / "hanging").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [*B, "-f"],
        cwd=repo,
        env={**env, "PROBE_HANG": "b"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    STARTED.append(proc)
    deadline = time.monotonic() + 600
    while not (repo / "hanging").exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "stage b never started"
        time.sleep(0.2)
    time.sleep(0.5)  # the pid is written: let the probe reach its sleep
    return proc


def test_the_parent_runs_until_the_last_stage_ends_then_finishes(probe):
    repo, env = probe
    sh([*DVC, "repro", "-f"], repo, env)
    # What each stage saw of its parent while it ran: RUNNING, in the second one too.
    assert (repo / "a.txt").read_text() == "RUNNING"
    assert (repo / "b.txt").read_text() == "RUNNING"
    parent, stages = runs(repo)
    assert stages == {"a": "FINISHED", "b": "FINISHED"}
    assert settled(repo, parent.info.run_id) == "FINISHED"


def test_a_failing_stage_fails_the_parent(probe):
    repo, env = probe
    out = subprocess.run(
        [*B, "-f"], cwd=repo, env={**env, "PROBE_FAIL": "b"}, capture_output=True, text=True
    )
    assert out.returncode != 0 and "probe failed" in out.stderr
    parent, stages = runs(repo)
    assert stages == {"b": "FAILED"}
    assert settled(repo, parent.info.run_id) == "FAILED"


def test_ctrl_c_prints_one_line_and_kills_the_parent(probe):
    repo, env = probe
    proc = hang_in_b(repo, env)
    masks = signal_masks(int((repo / "hanging").read_text()))
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    log = ended(proc, 600)
    assert proc.returncode != 0, f"the stage ran to its end through Ctrl-C; its signals: {masks}"
    assert "interrupted: stage b stopped (Ctrl-C)" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    parent, stages = runs(repo)
    assert stages == {"b": "KILLED"}
    assert settled(repo, parent.info.run_id) == "KILLED"


def test_a_stage_killed_outright_is_closed_as_killed(probe):
    repo, env = probe
    proc = hang_in_b(repo, env)
    os.kill(int((repo / "hanging").read_text()), signal.SIGKILL)  # the stage only
    ended(proc, 600)
    parent, _ = runs(repo)
    assert settled(repo, parent.info.run_id) == "KILLED"
    assert runs(repo)[1] == {"b": "KILLED"}


def test_runs_of_a_dvc_killed_outright_are_closed_by_the_next_run(probe):
    repo, env = probe
    proc = hang_in_b(repo, env)
    os.killpg(proc.pid, signal.SIGKILL)  # dvc, the stage and the watcher
    ended(proc, 600)
    killed, stages = runs(repo)
    assert stages == {"b": "RUNNING"}  # nothing left to close them
    sh([*B, "-f"], repo, env)
    c = client(repo)
    assert c.get_run(killed.info.run_id).info.status == "KILLED"
    b = c.search_runs(
        [killed.info.experiment_id], f"tags.`mlflow.parentRunId` = '{killed.info.run_id}'"
    )
    assert [(r.data.tags["stage"], r.info.status) for r in b] == [("b", "KILLED")]
    parent, _ = runs(repo)
    assert settled(repo, parent.info.run_id) == "FINISHED"
