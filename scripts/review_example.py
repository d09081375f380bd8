"""Capture what a reviewer sees after a one-param experiment, from a real run, for README.

    PNEUMOGAN_DATA_DIR=../shared/data uv run python scripts/review_example.py

Needs a clean checkout whose outputs match dvc.lock (after `dvc repro`). Runs
`dvc exp run -S mixup=0.3` in the workspace, records what `dvc metrics diff`,
`dvc exp show --md --only-changed` and `pneumogan review HEAD` print, then puts the workspace
back (`git checkout`, `dvc checkout`) and writes reports/review/<command>.txt, which
scripts/update_docs.py renders into README. tests/docs checks README against these files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "review"
OVERRIDE = "mixup=0.3"
COMMANDS = {
    "metrics_diff": ["dvc", "metrics", "diff"],
    "exp_show": ["dvc", "exp", "show", "--md", "--no-pager", "--only-changed", "--num", "1"],
    "review": ["pneumogan", "review", "HEAD"],
}


def sh(*args: str, capture: bool = True) -> str:
    done = subprocess.run(args, cwd=ROOT, text=True, capture_output=capture, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr if capture else ''}")
    return done.stdout if capture else ""


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    if sh("git", "status", "--porcelain", "--untracked-files=no").strip():
        sys.exit("the checkout has changes: commit or stash them first")
    if json.loads(sh("dvc", "status", "--json") or "{}"):
        sys.exit("outputs differ from dvc.lock: run `dvc repro` (and commit) first")
    try:
        sh("dvc", "exp", "run", "-S", OVERRIDE, capture=False)
        shown = {name: sh(*cmd) for name, cmd in COMMANDS.items()}
    finally:  # the workspace back as committed, the experiment kept in DVC's refs
        sh("git", "checkout", "--", ".")
        sh("dvc", "checkout", "--quiet")
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in shown.items():
        (OUT / f"{name}.txt").write_text(text)
        print(f"wrote {(OUT / f'{name}.txt').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
