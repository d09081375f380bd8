"""Fail when dvc.lock no longer matches the code, params or commands in git.

Works in a fresh clone without the DVC cache: missing data outputs are expected there and
ignored; what must match is everything git tracks (code, params.yaml, dvc.yaml commands).
"""

from __future__ import annotations

import json
import subprocess
import sys


def git_tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def main() -> int:
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    status = json.loads(out.stdout or "{}")
    tracked = git_tracked()
    problems = []
    for stage, changes in status.items():
        for change in changes:
            if isinstance(change, str):  # "changed command", "always changed", ...
                problems.append(f"{stage}: {change}")
                continue
            for path, state in change.get("changed deps", {}).items():
                if path == "params.yaml" or isinstance(state, dict):
                    problems.append(f"{stage}: params changed: {state}")
                elif path in tracked or state != "deleted":
                    problems.append(f"{stage}: {path} {state}")
            for path, state in change.get("changed outs", {}).items():
                if path in tracked and state != "deleted":
                    problems.append(f"{stage}: committed output {path} {state}")
    if problems:
        print("dvc.lock does not match the code and params in git:")
        print("\n".join(f"  {p}" for p in problems))
        print("Run the pipeline on the real data (dvc repro) and commit dvc.lock and metrics/.")
        return 1
    print("dvc.lock matches the code, params and commands in git")
    return 0


if __name__ == "__main__":
    sys.exit(main())
