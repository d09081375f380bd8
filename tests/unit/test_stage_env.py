"""A stage run by an interpreter without the project's packages says how to fix it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_stage_under_a_bare_python_names_the_interpreter_and_the_fix():
    # -S: no site-packages, as a system python without the project's environment
    done = subprocess.run(
        [sys.executable, "-S", "-m", "stages.split", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert sys.executable in lines[0] and "numpy" in lines[0] and "uv run dvc repro" in lines[0]
