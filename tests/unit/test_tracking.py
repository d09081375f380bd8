"""Which process a run was left RUNNING by, and whether it still runs."""

import socket
import subprocess
import time

import psutil

from pneumogan.core.tracking import alive, process_key


def test_a_process_is_alive_until_it_ends_and_a_zombie_has_ended():
    me = process_key(psutil.Process())
    assert me.startswith(f"{socket.gethostname()}:") and alive(me)
    child = subprocess.Popen(["sleep", "1"])
    key = process_key(psutil.Process(child.pid))
    assert alive(key)
    deadline = time.monotonic() + 30
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not reaped
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not alive(key)
    child.wait()
    assert not alive(key)


def test_a_reused_pid_another_host_and_a_bad_tag():
    host, pid, started = process_key(psutil.Process()).rsplit(":", 2)
    assert not alive(f"{host}:{pid}:{float(started) - 1:.3f}")  # same PID, another process
    assert alive(f"another-host:{pid}:0.000")  # not this host's to judge
    assert not alive("") and not alive("nonsense")
