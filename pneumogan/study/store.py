"""A study's stored experiments, read through DVC (`dvc exp show --json`) and from the study's
committed ledger, and which are done.

The ledger (`studies/results/<study>.jsonl`, one experiment per line: name, commit, params,
the metrics the report reads, code hashes) is written by `scripts/study.py run` as
experiments finish. It is committed, so a clone, or a later session on a machine whose
experiment refs are gone, sees the experiments as done and regenerates the same report.

An experiment counts as done for a cell when its pipeline inputs match what the current
code would run: the same params (params.yaml, validated, with the cell's overrides) and the same
code (every `.py` dependency in dvc.yaml, by hash). Its commit does not matter, so a
commit that changes only documentation leaves a study complete. A study file may instead pin
the pipeline to a commit (`pipeline`): its experiments then match that commit's params.yaml
and code, whatever the checkout's are, so a finished study stays complete and reproducible
(from a checkout of that commit) after the default pipeline moves on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

# Imported for what they register: load_params checks train.arch and gan.variant against them.
from pneumogan.classify import nets as _classifiers  # noqa: F401
from pneumogan.core.choices import LABELS
from pneumogan.core.errors import ParamsError
from pneumogan.core.params import load_params
from pneumogan.generate import nets as _generators  # noqa: F401
from pneumogan.study.spec import ALL, Cell, Study, apply_overrides


@dataclass(frozen=True)
class Experiment:
    """One stored DVC experiment: its name, commit, params, metrics and dependency hashes."""

    name: str
    rev: str
    timestamp: str
    params: dict[str, Any]  # params.yaml as the experiment ran it
    metrics: dict[str, dict]  # metrics file -> its content
    deps: dict[str, str]  # dependency path -> hash


def dvc(root: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, text=True, capture_output=True
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"dvc {' '.join(args)} failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    return out.stdout


@dataclass(frozen=True)
class QueueState:
    """What `dvc queue status` says: tasks waiting or running, and running ones left behind."""

    waiting: frozenset[str]  # queued, or running under a live worker
    orphaned: frozenset[str]  # shown as running while no worker is active
    queued: frozenset[str] = frozenset()  # not started yet
    active: int | None = None  # workers busy (None: the status did not say)

    @property
    def stalled(self) -> bool:
        """Tasks queued and no worker busy (none running, or only orphans): DVC's worker has
        stopped before the queue was empty (treeverse/dvc#10562), and nothing will start them."""
        return bool(self.queued) and self.active == 0


def queue_state(status: str) -> QueueState:
    """Parse `dvc queue status`. A task shown as running while the status reports no active
    worker was left by a run that was killed (its worker died with it): DVC keeps showing it
    as running, and it never finishes."""
    tasks: dict[str, set[str]] = {"Queued": set(), "Running": set()}
    active = None
    for line in status.splitlines():
        parts = line.split()
        if line.startswith("Worker status:") and len(parts) >= 3 and parts[2].isdigit():
            active = int(parts[2])
        elif len(parts) >= 3 and parts[-1] in tasks:
            tasks[parts[-1]].add(parts[1])
    queued = frozenset(tasks["Queued"])
    if active == 0:
        return QueueState(queued, frozenset(tasks["Running"]), queued, active)
    return QueueState(queued | tasks["Running"], frozenset(), queued, active)


def stored(root: Path, prefix: str) -> list[Experiment]:
    """Every finished experiment named `prefix`* on HEAD's first-parent history (DVC's own
    listing, and the metrics files from each experiment's commit)."""
    listing = json.loads(dvc(root, "exp", "show", "--json", "--num", "-1") or "[]")
    return finished(listing, prefix, read=lambda rev, path: committed_json(root, rev, path))


def committed_json(root: Path, rev: str, path: str) -> dict | None:
    """A JSON file as committed at `rev`, or None when it is not there."""
    out = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True)
    if out.returncode != 0:
        return None
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        return None


def finished(
    listing: list[dict], prefix: str, read: Callable[[str, str], dict | None] | None = None
) -> list[Experiment]:
    """The experiments of a `dvc exp show --json` listing named `prefix`* that finished:
    not queued, running or failed (DVC lists those too, with the params and dependency
    hashes they will run with), and with the evaluation's metrics.

    DVC lists only the declared metrics files. Since the pipeline declares only
    metrics/headline.json, the files the report reads (`LEDGER_METRICS`, uncached outputs
    committed with the experiment) come from the experiment's commit through `read`; older
    experiments, which declared them, have them in the listing.
    """
    found = []
    for baseline in listing:
        for exp in baseline.get("experiments") or []:
            name = exp.get("name") or ""
            state = (exp.get("executor") or {}).get("state")
            rev = (exp.get("revs") or [{}])[0]
            data = rev.get("data")
            if not name.startswith(prefix) or state not in (None, "success"):
                continue
            if rev.get("error") or not data:
                continue
            metrics = {k: v.get("data", {}) for k, v in (data.get("metrics") or {}).items()}
            for path in LEDGER_METRICS:
                if path not in metrics and read is not None and rev.get("rev"):
                    content = read(rev["rev"], path)
                    if content is not None:
                        metrics[path] = content
            if "metrics/eval.json" not in metrics:
                continue
            found.append(
                Experiment(
                    name=name,
                    rev=rev["rev"],
                    timestamp=data.get("timestamp") or "",
                    params=(data.get("params") or {}).get("params.yaml", {}).get("data", {}),
                    metrics=metrics,
                    deps={k: (v or {}).get("hash") for k, v in (data.get("deps") or {}).items()},
                )
            )
    return found


LEDGER_METRICS = (
    "metrics/eval.json",
    "metrics/fuse.json",
    "metrics/split.json",
    "metrics/gan.json",
)


def ledger_path(root: Path, study: str) -> Path:
    return root / "studies" / "results" / f"{study}.jsonl"


def read_ledger(root: Path, study: str) -> list[Experiment]:
    """The experiments recorded in the study's ledger (none when it has no ledger)."""
    path = ledger_path(root, study)
    if not path.is_file():
        return []
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(Experiment(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as err:
            raise RuntimeError(f"{path}:{i}: not a ledger entry ({err})") from None
    return out


def record(root: Path, study: str, experiments: list[Experiment]) -> int:
    """Add `experiments` to the ledger (each name and commit once); return how many were new.

    Only the metrics the report reads and the code hashes are kept. The file is rewritten
    sorted by name and commit, so the same experiments always give the same bytes.
    """
    entries = {(e.name, e.rev): e for e in read_ledger(root, study)}
    before = len(entries)
    for e in experiments:
        slim = dataclasses.replace(
            e,
            metrics={k: v for k, v in e.metrics.items() if k in LEDGER_METRICS},
            deps={k: v for k, v in e.deps.items() if is_code(k)},
        )
        entries.setdefault((e.name, e.rev), slim)
    path = ledger_path(root, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(dataclasses.asdict(entries[key]), sort_keys=True, separators=(",", ":"))
        for key in sorted(entries)
    ]
    path.write_text("".join(f"{line}\n" for line in lines))
    return len(entries) - before


CODE = ("pneumogan/", "stages/")  # where the pipeline's code lives: its files and wing folders


def is_code(dep: str) -> bool:
    """A code dependency: a module or a wing folder (the rest are data, params and models)."""
    return dep.startswith(CODE) or dep.endswith(".py")


def dir_hash(files: dict[str, bytes]) -> str:
    """DVC's hash of a folder: the MD5 of its sorted (relpath, MD5) listing, plus `.dir`."""
    listing = [
        {"md5": hashlib.md5(data).hexdigest(), "relpath": rel}
        for rel, data in sorted(files.items())
    ]
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode()).hexdigest() + ".dir"


def checkout_files(root: Path, folder: str) -> list[str]:
    """The files of a code folder in the checkout, as DVC sees them (.dvcignore: bytecode)."""
    base = root / folder
    return sorted(
        p.relative_to(base).as_posix()
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def code_hashes(
    root: Path,
    read: Callable[[str], bytes] | None = None,
    files: Callable[[str], list[str]] | None = None,
) -> dict[str, str]:
    """DVC's hash of every code dependency that dvc.yaml declares (a module's MD5, a wing
    folder's `.dir` hash), as the checkout has it now, or as `read` (path -> bytes) and
    `files` (folder -> the files under it) give them."""
    read = read or (lambda p: (root / p).read_bytes())
    files = files or (lambda folder: checkout_files(root, folder))
    stages = yaml.safe_load(read("dvc.yaml"))["stages"]
    paths = {d for s in stages.values() for d in s.get("deps", []) if is_code(d)}
    out = {}
    for path in sorted(paths):
        if path.endswith(".py"):
            out[path] = hashlib.md5(read(path)).hexdigest()
        else:
            out[path] = dir_hash({rel: read(f"{path}/{rel}") for rel in files(path)})
    return out


def pipeline_inputs(root: Path, rev: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """params.yaml and the code hashes of the pipeline: the checkout's, or those of commit `rev`
    (read from git, so the checkout may be anywhere else)."""

    def from_git(path: str) -> bytes:
        out = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True)
        if out.returncode:
            raise ParamsError(
                f"the study's pipeline commit {rev}: cannot read its {path} "
                f"({out.stderr.decode(errors='replace').strip()}); a shallow clone lacks old "
                "commits: git fetch --unshallow"
            )
        return out.stdout

    def git_files(folder: str) -> list[str]:
        out = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", rev, "--", folder],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        return sorted(line[len(folder) + 1 :] for line in out.stdout.splitlines())

    if rev is None:
        return load_params(root / "params.yaml").model_dump(mode="json"), code_hashes(root)
    # A pinned commit's params.yaml is that commit's record, in that commit's schema (which
    # today's models may reject), so it is compared as DVC stored it, not validated again.
    return yaml.safe_load(from_git("params.yaml")), code_hashes(root, from_git, git_files)


def matches(exp: Experiment, params: dict[str, Any], code: dict[str, str]) -> bool:
    """Did `exp` run with exactly these params and this code?"""
    ran_code = {p: h for p, h in exp.deps.items() if is_code(p)}
    return exp.params == params and ran_code == code


def done(root: Path, study: Study, cells: list[Cell], refs: bool = True) -> dict[Cell, Experiment]:
    """The newest stored experiment of each cell whose pipeline inputs match the current code
    (or the commit the study's `pipeline` pins), from the experiment refs (unless `refs` is
    false) and the study's ledger."""
    base, code = pipeline_inputs(root, study.pipeline)
    by_name: dict[str, list[Experiment]] = {}
    found = stored(root, f"{study.name}-") if refs else []
    for exp in found + read_ledger(root, study.name):
        by_name.setdefault(exp.name, []).append(exp)
    out = {}
    for cell in cells:
        expected = apply_overrides(base, study.overrides(cell))
        fits = [e for e in by_name.get(cell.name(study.name), []) if matches(e, expected, code)]
        if fits:
            out[cell] = max(fits, key=lambda e: (e.timestamp, e.rev))
    return out


def _get(tree: dict, dotted: str, default: Any = float("nan")) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def runs_table(study: Study, experiments: dict[Cell, Experiment]) -> pd.DataFrame:
    """One row per done experiment: its cell, what its params made of it, and its metrics."""
    rows = []
    for cell, exp in experiments.items():
        m = exp.metrics
        ev, fuse = m.get("metrics/eval.json", {}), m.get("metrics/fuse.json", {})
        split = _get(m.get("metrics/split.json", {}), "train", {})
        gan = m.get("metrics/gan.json", {})
        rows.append(
            {
                "experiment": cell.name(study.name),
                "method": cell.method,
                "cap": cell.cap or ALL,
                "seed": cell.seed,
                "real_normal": split.get("normal"),
                "real_pneumonia": split.get("pneumonia"),
                "minority": LABELS[int(split.get("normal", 0) > split.get("pneumonia", 0))],
                "synthetic": fuse.get("synthetic"),
                "oversampled": fuse.get("oversampled"),
                "target_ratio": _get(exp.params, "fuse.target_ratio"),
                "gan_variant": _get(exp.params, "gan.variant", ""),
                "gan_diffaugment": "+".join(_get(exp.params, "gan.diffaugment", []) or []),
                "threshold": ev.get("threshold"),
                "gan_fid": _get(gan, "synthetic.fid"),
                "gan_copies": _get(gan, "memorisation.share_synthetic"),
                "gan_agreement": _get(gan, "class_agreement.synthetic"),
                "gan_agreement_real": _get(gan, "class_agreement.real_heldout"),
                **{
                    f"gan_{k}_{name}": _get(gan, f"per_class.{name}.{path}")
                    for name in LABELS.values()
                    for k, path in (
                        ("agreement", "class_agreement.synthetic"),
                        ("fid_heldout", "synthetic_vs_heldout.fid"),
                    )
                },
                "test_images": ev.get("n"),
                "auc": ev.get("auc"),
                "accuracy": ev.get("accuracy"),
                "balanced_accuracy": ev.get("balanced_accuracy"),
                "sensitivity": ev.get("sensitivity"),
                "specificity": ev.get("specificity"),
                "f1": ev.get("f1"),
                "brier": ev.get("brier"),
                "ece": ev.get("ece"),
            }
        )
    return pd.DataFrame(rows)
