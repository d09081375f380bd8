"""Time a whole `dvc repro` and each stage in it, start-up and DVC's bookkeeping included.

    uv run python scripts/bench_repro.py          # dvc repro -f: every stage, from scratch
    uv run python scripts/bench_repro.py --cached # dvc repro: only what changed

A stage's seconds run from DVC's "Running stage" line to the next stage's (or to the end),
so they include the process start, the imports, the work and DVC hashing and saving it.
The CPU time of all processes is printed too: wall-clock seconds move with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cached", action="store_true", help="plain dvc repro (no -f)")
    args = p.parse_args()
    cmd = [sys.executable, "-m", "dvc", "repro", *([] if args.cached else ["-f"])]
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    with subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            if m := re.match(r"Running stage '(\w+)'", line):
                marks.append((m.group(1), time.perf_counter() - start))
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"dvc repro failed (exit {proc.returncode})")
    print(f"\n{'stage':<14} {'seconds':>8}")
    ends = [t for _, t in marks[1:]] + [total]
    print(f"{'(dvc start)':<14} {marks[0][1] if marks else total:>8.1f}")
    for (name, t0), t1 in zip(marks, ends, strict=True):
        print(f"{name:<14} {t1 - t0:>8.1f}")
    print(f"{'total':<14} {total:>8.1f}  ({total / 60:.1f} min)")
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = used.ru_utime + used.ru_stime
    cores = os.cpu_count() or 1
    print(
        f"CPU time of all processes: {cpu:.1f} s (user {used.ru_utime:.1f} s), "
        f"{cpu / total / cores:.0%} of {cores} cores over the run"
    )


if __name__ == "__main__":
    main()
