"""Print each stage's start-up: seconds from process start to a clean exit, median of N runs.

    uv run python scripts/bench_startup.py            # this checkout
    uv run python scripts/bench_startup.py --runs 7

Two figures per stage: `--help` (the imports a stage pays before reading its arguments) and
a rejected param (how long a bad value takes to fail: through `check_params` for params.yaml,
and through the stage itself for a slice edited by hand).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def seconds(cmd: list[str], runs: int, expect_fail: bool) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if (out.returncode != 0) != expect_fail:
            raise SystemExit(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stderr}")
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    args = p.parse_args()
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["mixup"] = -1
        bad = Path(tmp) / "params.yaml"
        bad.write_text(yaml.safe_dump(params))
        bad_slice = Path(tmp) / "slice.json"
        bad_slice.write_text(json.dumps({"enabled": True, "seed": -1}))
        print(f"{'stage':<14} {'--help':>8} {'bad param':>10}  (median of {args.runs}, seconds)")
        for name in stages:
            help_s = seconds([py, "-m", f"stages.{name}", "--help"], args.runs, False)
            if name == "check_params":
                cmd = [py, "-m", "stages.check_params", "--params", str(bad), "--out", tmp]
            else:  # the stage's own arguments, with a slice whose `seed` is out of range
                _, _, module, *rest = shlex.split(stages[name]["cmd"])
                flags = dict(zip(rest[::2], rest[1::2], strict=True))
                flags["--params"] = str(bad_slice)
                cmd = [py, "-m", module, *[x for kv in flags.items() for x in kv]]
            fail_s = seconds(cmd, args.runs, True)
            print(f"{name:<14} {help_s:>8.2f} {fail_s:>10.2f}")


if __name__ == "__main__":
    main()
