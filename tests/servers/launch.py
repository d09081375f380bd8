"""Real servers on localhost for the team tests: Debian's sshd and PostgreSQL, and MLflow's.

Each helper starts its server on a free port under a temporary directory and stops it on
exit. A missing package skips the test with the command that installs it; `.ci/run`
installs them (Debian: openssh-server, postgresql).
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {_output(proc)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not listening on port {port} after {timeout:.0f} s")
        time.sleep(0.2)


def _output(proc: subprocess.Popen) -> str:
    log = getattr(proc, "log_path", None)
    return Path(log).read_text(errors="replace")[-4000:] if log else ""


def start(cmd: list[str], log: Path, **kwargs) -> subprocess.Popen:
    """Start a server writing to `log` (a pipe nobody reads would fill up and block it)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    proc.log_path = log
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    """Poll `url` until it answers; fail with the server's log if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{what} exited with {proc.returncode}: {_output(proc)}"
                ) from None
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{what} not ready after {timeout:.0f} s: {_output(proc)}"
                ) from None
            time.sleep(0.3)


@dataclass
class Ssh:
    port: int
    user: str
    keyfile: Path  # the client's private key, authorised by the server

    def url(self, path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def sshd(tmp: Path) -> Iterator[Ssh]:
    """Debian's OpenSSH server on 127.0.0.1, key authentication only, for the current user."""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(binary).exists() or not shutil.which("ssh-keygen"):
        pytest.skip("no OpenSSH server: apt-get install openssh-server")
    try:
        Path("/run/sshd").mkdir(exist_ok=True)  # its privilege-separation directory
    except PermissionError:
        pytest.skip("sshd needs /run/sshd, which only root can create")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True
        )
    shutil.copy(tmp / "client_key.pub", tmp / "authorized_keys")
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp / 'host_key'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PidFile {tmp / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
    )
    proc = start([binary, "-D", "-e", "-f", str(config)], tmp / "sshd.log")
    try:
        wait_for_port(port, proc, "sshd")
        yield Ssh(port, getpass.getuser(), tmp / "client_key")
    finally:
        stop(proc)


@dataclass
class Postgres:
    port: int
    user: str
    password: str
    database: str

    @property
    def uri(self) -> str:
        """SQLAlchemy URI without the password (libpq reads PGPASSWORD from the environment)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{self.database}"


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """Debian's PostgreSQL in a fresh cluster on 127.0.0.1, password (SCRAM) authentication."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("no PostgreSQL server: apt-get install postgresql")
    bindir = Path(found[-1]).parent
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as `postgres`
        if not shutil.which("runuser"):
            pytest.skip("running PostgreSQL as root needs runuser (util-linux)")
        as_owner = ["runuser", "-u", "postgres", "--"]
    top = Path(tempfile.mkdtemp(prefix="pneumogan-pg-"))  # outside pytest's 0700 tmp tree
    password, port = "test-only-password", free_port()
    (top / "pw").write_text(password + "\n")
    if as_owner:
        shutil.chown(top, "postgres")
        shutil.chown(top / "pw", "postgres")

    def run(*cmd: str) -> None:
        subprocess.run([*as_owner, *cmd], check=True, capture_output=True)

    run(str(bindir / "initdb"), "-D", str(top / "data"), "-U", "mlflow", "-E", "UTF8",
        "--auth=scram-sha-256", f"--pwfile={top / 'pw'}")  # fmt: skip
    run(str(bindir / "pg_ctl"), "-D", str(top / "data"), "-l", str(top / "log"), "-w",
        "-o", f"-p {port} -k {top} -h 127.0.0.1", "start")  # fmt: skip
    try:
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run(
            [
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "mlflow",
                "mlflow",
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        yield Postgres(port, "mlflow", password, "mlflow")
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            run(str(bindir / "pg_ctl"), "-D", str(top / "data"), "-m", "fast", "stop")
        shutil.rmtree(top, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(db: Postgres, artifacts: Path) -> Iterator[str]:
    """`mlflow server` on the PostgreSQL store, proxying artifacts; yields its http:// URI."""
    port = free_port()
    env = {
        **os.environ,
        "PGPASSWORD": db.password,  # the credential reaches the server through its environment
        "MLFLOW_BACKEND_STORE_URI": db.uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    cmd = [sys.executable, "-m", "mlflow", "server", "--serve-artifacts"]
    cmd += ["--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1"]
    artifacts.mkdir(parents=True, exist_ok=True)
    proc = start(cmd, artifacts.parent / "mlflow-server.log", env=env)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{uri}/health", proc, "mlflow server")
        yield uri
    finally:
        stop(proc)
