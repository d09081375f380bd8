"""Run the balancing study with DVC's experiment queue and write its report.

    uv run python scripts/study.py run       # queue the missing experiments, run them, report
    uv run python scripts/study.py report    # regenerate the report from stored experiments

The grid (methods, caps on the real data, seeds, extra params) is in the study file,
`studies/balancing.yaml` by default. `run` queues one `dvc exp run --queue` per missing
experiment of the current commit (named <study>-<method>-<cap>-s<seed>), runs the queue with
`dvc exp run --run-all`, then writes the report. Stages that an earlier experiment already
ran with the same inputs (the split of a seed and cap, say) come from DVC's run cache.
`report` reads every experiment's params and metrics back from git (refs/exps), so the same
stored experiments always give the same report, byte for byte.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pneumogan.params import ParamsError  # noqa: E402
from pneumogan.report import replace_block  # noqa: E402
from pneumogan.study import (  # noqa: E402
    collect,
    experiment_refs,
    git,
    headline,
    load_study,
    report,
)


def dvc(root: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, text=True, capture_output=True
    )
    if out.returncode != 0:
        raise SystemExit(
            f"error: dvc {' '.join(args)} failed (exit {out.returncode})\n"
            f"{out.stdout}\n{out.stderr}"
        )
    return out.stdout


def queued_names(root: Path) -> set[str]:
    """Names of experiments already waiting or running in the queue."""
    status = dvc(root, "queue", "status")
    return {
        parts[1]
        for line in status.splitlines()[1:]
        if len(parts := line.split()) >= 3 and parts[-1] in ("Queued", "Running")
    }


def run(args: argparse.Namespace) -> None:
    root, study = args.root, load_study(args.study)
    dirty = git(root, "status", "--porcelain", "--untracked-files=no").strip()
    if dirty:
        raise SystemExit(
            "error: uncommitted changes to tracked files; the study's experiments are "
            f"attributed to the commit they ran on, so commit first:\n{dirty}"
        )
    head = git(root, "rev-parse", "HEAD").strip()
    seeds = tuple(args.seeds) if args.seeds else None
    if seeds and not set(seeds) <= set(study.seeds):
        raise SystemExit(f"error: --seeds {list(seeds)} not all in the study's {study.seeds}")
    cells = study.cells(seeds)
    stored = experiment_refs(root, f"{study.name}-").get(head, {})
    waiting = queued_names(root)
    todo = [c for c in cells if c.name(study.name) not in stored]
    print(
        f"{study.name}: {len(cells)} experiments, {len(cells) - len(todo)} already stored "
        f"on {head[:10]}, {len(todo)} to run",
        flush=True,
    )
    for i, cell in enumerate(todo, 1):
        name = cell.name(study.name)
        if name in waiting:
            print(f"[{i}/{len(todo)}] {name} already queued", flush=True)
            continue
        sets = [a for s in (*cell.overrides(study.name), *study.set) for a in ("-S", s)]
        dvc(root, "exp", "run", "--queue", "-n", name, *sets)
        print(f"[{i}/{len(todo)}] queued {name}", flush=True)
    if todo:  # follows each experiment's log; failures are reported below
        subprocess.run(
            [sys.executable, "-m", "dvc", "exp", "run", "--run-all", "--jobs", str(args.jobs)],
            cwd=root,
        )
    stored = experiment_refs(root, f"{study.name}-").get(head, {})
    if failed := [c.name(study.name) for c in cells if c.name(study.name) not in stored]:
        raise SystemExit(
            f"error: {len(failed)} experiment(s) did not finish: {', '.join(failed)}\n"
            "see `dvc queue logs <name>`; rerun this command to retry only those"
        )
    write_report(args)


def write_report(args: argparse.Namespace) -> None:
    study = load_study(args.study)
    try:
        baseline, runs = collect(args.root, study, args.baseline)
    except LookupError as err:
        raise SystemExit(f"error: {err}") from None
    out = args.out or args.root / "reports" / f"{study.name}.md"
    try:
        rel = args.study.relative_to(args.root)
    except ValueError:
        rel = args.study
    study_arg = "" if args.study == default_study(args.root) else f" --study {rel}"
    command = f"uv run python scripts/study.py report{study_arg}"
    report(study, baseline, runs, out, command)
    print(f"wrote {out} from {len(runs)} experiments on {baseline[:10]}")
    readme = args.root / "README.md"
    block = f"study-{study.name}"
    if readme.is_file() and f"<!-- {block}:begin -->" in (text := readme.read_text()):
        readme.write_text(replace_block(text, block, headline(runs)))
        print(f"updated the {block} block of {readme}")


def default_study(root: Path) -> Path:
    return root / "studies" / "balancing.yaml"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("action", choices=["run", "report"])
    p.add_argument("--study", type=Path, default=None, help="study file (studies/balancing.yaml)")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    p.add_argument("--seeds", type=int, nargs="+", help="run: only these of the study's seeds")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="run: experiments at once (default 1; on CPU, torch already uses every core and "
        "two trainings side by side run several times slower each)",
    )
    p.add_argument("--baseline", help="report: commit whose experiments to use (newest)")
    p.add_argument("--out", type=Path, help="report: markdown path (reports/<study>.md)")
    args = p.parse_args(argv)
    args.root = args.root.resolve()
    args.study = (args.study or default_study(args.root)).resolve()
    if not re.fullmatch(r"[1-9]\d*", str(args.jobs)):
        p.error("--jobs must be a positive integer")
    try:
        run(args) if args.action == "run" else write_report(args)
    except ParamsError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
