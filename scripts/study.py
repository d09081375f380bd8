"""Run a study with DVC's experiment queue and write its report.

    uv run python scripts/study.py run       # queue the missing experiments, run them, report
    uv run python scripts/study.py run --seeds 42 --methods none gan   # a part of the grid
    uv run python scripts/study.py run --caps 10 50   # the cheap cells first
    uv run python scripts/study.py run --gpu   # on a GPU machine: only the cells marked `gpu`
    uv run python scripts/study.py report    # regenerate the report from stored experiments
    uv run python scripts/study.py push      # share its stored experiments (git + DVC remotes)
    uv run python scripts/study.py pull      # fetch the ones others pushed

The grid (methods, caps on the real data, seeds, extra params) is in the study file,
`studies/balancing.yaml` by default. An experiment is done when a stored one of that name
ran with the pipeline inputs of the current code (params and code hashes, read with
`dvc exp show --json`); `run` queues one `dvc exp run --queue` per missing experiment
(named <study>-<method>-<cap>-s<seed>), runs the queue (`dvc queue start`, then waits for
it, restarting a worker that stopped with tasks left), then writes the report. `report`
reads only stored experiments, so the same experiments always give the same report, byte
for byte.

Each finished experiment is also recorded in the study's ledger,
`studies/results/<study>.jsonl` (its params, code hashes and the metrics the report reads);
commit it, and every clone counts those experiments as done and writes the same report, with
no experiment refs at all. A study too long for one sitting is thus run in parts: `run`,
commit the ledger, `run` again later (on this or another machine) for the rest.

Cells a study file marks `gpu` (a method and the caps where it is too slow for a CPU) are
left out of `run` and listed in the report; `run --gpu`, on a machine where torch sees a GPU,
runs only those.

A study file may pin the pipeline to a commit (`pipeline: <commit>`): experiments then count
when they ran with that commit's params.yaml and code, so the report stays whole when the
default pipeline changes later. `run` refuses where the checkout's pipeline differs from the
pinned one; run the missing experiments from a checkout of that commit and copy the ledger back.

`push` sends every stored experiment of the study (its git ref to the git remote, its outputs
to the default DVC remote) with `dvc exp push`; `pull` fetches every experiment of the study
that the git remote holds with `dvc exp pull`. Several machines can so split a study: each
pulls, runs what is still missing and pushes; any of them then writes the same report.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pneumogan.core.errors import ParamsError  # noqa: E402
from pneumogan.report.markdown import replace_block  # noqa: E402
from pneumogan.study.render import headline, report  # noqa: E402
from pneumogan.study.spec import ALL, load_study  # noqa: E402
from pneumogan.study.store import (  # noqa: E402
    done,
    dvc,
    ledger_path,
    pipeline_inputs,
    queue_state,
    record,
    runs_table,
    stored,
)


def queued_names(root: Path) -> set[str]:
    """Names of experiments already waiting or running in the queue. Tasks an interrupted run
    left shown as running with no worker are killed (DVC then marks them failed), so that
    they are queued again instead of waited for."""
    state = queue_state(dvc(root, "queue", "status"))
    for name in sorted(state.orphaned):
        print(
            f"{name}: left running by an interrupted run, with no worker; queueing it again",
            flush=True,
        )
        dvc(root, "queue", "kill", name)
    return set(state.waiting)


def uncommitted(root: Path) -> str:
    """Uncommitted changes to the pipeline's inputs: dvc.yaml, dvc.lock, params.yaml and every
    stage dependency. Others (the ledger, report and README that `run` itself writes) do not
    change what an experiment runs, so they do not block one."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"].values()
    inputs = {"dvc.yaml", "dvc.lock", "params.yaml"} | {
        str(d).rstrip("/") for s in stages for d in s.get("deps", [])
    }

    def is_input(path: str) -> bool:
        return any(path == i or path.startswith(f"{i}/") for i in inputs)

    return "\n".join(line for line in status.splitlines() if is_input(line[3:])).strip()


def uncached_stages(root: Path) -> list[str]:
    """Stages of the committed dvc.lock whose directory outputs are missing from the DVC cache.

    DVC's experiment executor, after restoring a stage from the run cache, asks the baseline's
    data index whether each dependency is a pipeline output. For a dependency inside a
    directory output (data/split/train.npz) that loads the directory's listing, the `.dir`
    object named in the committed dvc.lock; in a fresh clone it is not in the cache, and the
    experiment fails with "failed to load directory". dvc 3.67 does this.
    """
    lock = root / "dvc.lock"
    if not lock.is_file():
        return []
    cache = Path(dvc(root, "cache", "dir").strip()) / "files" / "md5"
    missing = []
    for name, stage in (yaml.safe_load(lock.read_text()).get("stages") or {}).items():
        dirs = [
            str(o["md5"]) for o in stage.get("outs", []) if str(o.get("md5", "")).endswith(".dir")
        ]
        if any(not (cache / h[:2] / h[2:]).is_file() for h in dirs):
            missing.append(name)
    return sorted(missing)


def run_queue(root: Path, jobs: int, poll: float = 10.0, patience: int = 3) -> None:
    """Start `jobs` queue workers and wait until no task is queued or running, printing each
    task as it ends. DVC's worker can stop with tasks still queued (treeverse/dvc#10562), where
    `dvc exp run --run-all` would wait for ever; a queue seen stalled `patience` polls in a row
    (so not a worker still starting) gets its workers started again."""
    dvc(root, "queue", "start", "--jobs", str(jobs))
    print(
        f"queue started ({jobs} worker(s)); follow one with `dvc queue logs -f <name>`", flush=True
    )
    state, stalled = queue_state(dvc(root, "queue", "status")), 0
    while state.waiting:
        time.sleep(poll)
        now = queue_state(dvc(root, "queue", "status"))
        for name in sorted(state.waiting - now.waiting):
            print(f"{name}: ended ({len(now.waiting)} to go)", flush=True)
        stalled = stalled + 1 if now.stalled else 0
        if stalled >= patience:
            print(
                f"the queue's worker stopped with {len(now.queued)} task(s) queued; starting it "
                "again",
                flush=True,
            )
            dvc(root, "queue", "start", "--jobs", str(jobs))
            stalled = 0
        state = now


def cache_baseline(root: Path) -> None:
    """Reproduce the committed pipeline's directory outputs into the cache where they are missing
    (see `uncached_stages`): for the default params that is the data and the stand-ins, seconds."""
    if not (stages := uncached_stages(root)):
        return
    print(
        f"the DVC cache lacks the committed outputs of {', '.join(stages)} (a fresh clone?), "
        "which DVC's experiments need when they reuse a stage from the run cache; "
        f"running dvc repro {' '.join(stages)} first",
        flush=True,
    )
    out = subprocess.run([sys.executable, "-m", "dvc", "repro", *stages], cwd=root)
    if out.returncode != 0:
        raise SystemExit(f"error: dvc repro {' '.join(stages)} failed (exit {out.returncode})")
    if changed := uncommitted(root):
        raise SystemExit(
            "error: dvc repro changed tracked files, so the committed dvc.lock does not match "
            f"the committed code and params; run `dvc repro` and commit dvc.lock first:\n{changed}"
        )


def run(args: argparse.Namespace) -> None:
    root, study = args.root, load_study(args.study)
    if dirty := uncommitted(root):
        raise SystemExit(
            "error: uncommitted changes to the pipeline's inputs; queued experiments run the "
            f"committed code, so commit first:\n{dirty}"
        )
    if study.pipeline and pipeline_inputs(root) != pipeline_inputs(root, study.pipeline):
        ledger = ledger_path(root, study.name).relative_to(root)
        raise SystemExit(
            f"error: {args.study} pins the study to the pipeline of commit {study.pipeline}, "
            "and this checkout's params.yaml or pipeline code differ from it: experiments run "
            "here would not count. Run it from a checkout of that commit: git worktree add "
            f"../{study.name}-{study.pipeline} {study.pipeline}, copy this checkout's {ledger} "
            "there (so it runs only what is missing), run scripts/study.py run there, copy "
            f"its {ledger} back and run scripts/study.py report here. Or set `pipeline: null` "
            "to rerun every experiment with this checkout's pipeline"
        )
    seeds = tuple(args.seeds) if args.seeds else None
    if seeds and not set(seeds) <= set(study.seeds):
        raise SystemExit(f"error: --seeds {list(seeds)} not all in the study's {study.seeds}")
    methods = tuple(args.methods) if args.methods else None
    if methods and not set(methods) <= {*study.methods, *study.cap_methods}:
        raise SystemExit(
            f"error: --methods {list(methods)} not all in the study's "
            f"{sorted({*study.methods, *study.cap_methods})}"
        )
    cells = study.cells(seeds, methods)
    if args.caps:
        known = {ALL: None, **{str(c): c for c in study.caps}}
        if not set(args.caps) <= set(known):
            raise SystemExit(f"error: --caps {args.caps} not all of {list(known)}")
        kept = {known[cap] for cap in args.caps}
        cells = [c for c in cells if c.cap in kept]
    gpu = cuda_available()
    if args.gpu and not gpu:
        raise SystemExit("error: --gpu runs the cells that need a GPU, and torch sees none here")
    if args.gpu:
        cells = [c for c in cells if study.needs_gpu(c)]
    elif skipped := [c for c in cells if study.needs_gpu(c)]:
        cells = [c for c in cells if not study.needs_gpu(c)]
        where = "a GPU machine runs them with --gpu" if not gpu else "run them with --gpu"
        print(f"{study.name}: {len(skipped)} cell(s) the study file marks `gpu` left out ({where})")
    finished = done(root, study, cells)
    todo = [c for c in cells if c not in finished]
    waiting = queued_names(root)
    print(
        f"{study.name}: {len(cells)} experiments, {len(cells) - len(todo)} already stored "
        f"with the current pipeline inputs, {len(todo)} to run",
        flush=True,
    )
    for i, cell in enumerate(todo, 1):
        name = cell.name(study.name)
        if name in waiting:
            print(f"[{i}/{len(todo)}] {name} already queued", flush=True)
            continue
        sets = [a for s in study.overrides(cell) for a in ("-S", s)]
        dvc(root, "exp", "run", "--queue", "-n", name, *sets)
        print(f"[{i}/{len(todo)}] queued {name}", flush=True)
    if todo:  # failures are reported below
        cache_baseline(root)
        run_queue(root, args.jobs)
    finished = done(root, study, cells)
    if new := record(root, study.name, list(finished.values())):
        print(f"recorded {new} experiment(s) in {ledger_path(root, study.name).relative_to(root)}")
    if failed := [c.name(study.name) for c in cells if c not in finished]:
        raise SystemExit(
            f"error: {len(failed)} experiment(s) did not finish: {', '.join(failed)}\n"
            "see `dvc queue logs <name>`; rerun this command to retry only those"
        )
    write_report(args)


def write_report(args: argparse.Namespace) -> None:
    study = load_study(args.study)
    experiments = done(args.root, study, study.cells())
    if not experiments:
        raise SystemExit(
            f"error: no stored experiments of {study.name} match the current pipeline inputs; "
            "run the study first (scripts/study.py run)"
        )
    runs = runs_table(study, experiments)
    out = args.out or args.root / "reports" / f"{study.report_name}.md"
    try:
        rel = args.study.relative_to(args.root)
    except ValueError:
        rel = args.study
    study_arg = "" if args.study == default_study(args.root) else f" --study {rel}"
    left = [c for c in study.cells() if c not in experiments and study.needs_gpu(c)]
    report(study, runs, out, f"uv run python scripts/study.py report{study_arg}", gpu_left=left)
    print(f"wrote {out} from {len(runs)} experiments")
    block = f"study-{study.report_name}"
    for page in [args.root / "README.md", *sorted((args.root / "docs").rglob("*.md"))]:
        if page.is_file() and f"<!-- {block}:begin -->" in (text := page.read_text()):
            page.write_text(replace_block(text, block, headline(runs)))
            print(f"updated the {block} block of {page}")


def share(args: argparse.Namespace) -> None:
    """`dvc exp push` / `dvc exp pull` of the study's experiments to or from `args.remote`."""
    study = load_study(args.study)
    prefix = f"{study.name}-"
    if args.action == "push":
        names = sorted({e.name for e in stored(args.root, prefix)})
    else:
        listing = dvc(args.root, "exp", "list", "--all-commits", "--name-only", args.remote)
        names = sorted({n for n in listing.split() if n.startswith(prefix)})
    if not names:
        where = "stored here" if args.action == "push" else f"on {args.remote}"
        print(f"{study.name}: no experiments {where}")
        return
    dvc(args.root, "exp", args.action, args.remote, *names)
    verb = "pushed to" if args.action == "push" else "pulled from"
    print(f"{study.name}: {len(names)} experiments {verb} {args.remote}")


def cuda_available() -> bool:
    import torch  # only here: the report and share actions need no torch

    return torch.cuda.is_available()


def default_study(root: Path) -> Path:
    return root / "studies" / "balancing.yaml"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("action", choices=["run", "report", "push", "pull"])
    p.add_argument("--study", type=Path, default=None, help="study file (studies/balancing.yaml)")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    p.add_argument("--seeds", type=int, nargs="+", help="run: only these of the study's seeds")
    p.add_argument(
        "--methods", nargs="+", help="run: only these of the study's methods (generator arms)"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="run: experiments at once (default 1; on CPU, torch already uses every core and "
        "two trainings side by side run several times slower each)",
    )
    p.add_argument(
        "--caps",
        nargs="+",
        help=f"run: only these of the study's caps ({ALL!r}: all the images)",
    )
    p.add_argument(
        "--gpu",
        action="store_true",
        help="run: only the cells the study file marks `gpu` (they are left out otherwise)",
    )
    p.add_argument("--out", type=Path, help="report: markdown path (reports/<report>.md)")
    p.add_argument("--remote", default="origin", help="push, pull: the git remote (origin)")
    args = p.parse_args(argv)
    args.root = args.root.resolve()
    args.study = (args.study or default_study(args.root)).resolve()
    if not re.fullmatch(r"[1-9]\d*", str(args.jobs)):
        p.error("--jobs must be a positive integer")
    try:
        {"run": run, "report": write_report, "push": share, "pull": share}[args.action](args)
    except (ParamsError, RuntimeError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
