"""The balancing study: which experiments it runs, and the report made from their metrics.

A study is a grid of DVC experiments (methods × real-data caps × seeds) described by a YAML
file (see `studies/balancing.yaml`). `scripts/study.py run` queues the missing ones with
`dvc exp run --queue` and runs the queue; `scripts/study.py report` reads every
experiment's committed params and metrics back from git and writes the markdown report.
Nothing in the report is typed by hand, and the same experiments give the same bytes.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from pneumogan.io import atomic_path
from pneumogan.params import NAME, ParamsError
from pneumogan.plots import _save_fig, plt

METHODS = ("none", "oversample", "gan")
METRICS = {  # eval.json key: (label, higher is better)
    "auc": ("AUC", True),
    "accuracy": ("accuracy", True),
    "balanced_accuracy": ("balanced accuracy", True),
    "sensitivity": ("sensitivity", True),
    "specificity": ("specificity", True),
    "f1": ("F1", True),
    "brier": ("Brier score", False),
    "ece": ("ECE", False),
}
PAIRS = (("gan", "none"), ("gan", "oversample"), ("oversample", "none"))
ALL = "all"


@dataclass(frozen=True)
class Cell:
    """One experiment of a study: a balancing method, a cap on the real data, a seed."""

    method: str
    cap: int | None
    seed: int

    def name(self, study: str) -> str:
        return f"{study}-{self.method}-{self.cap or ALL}-s{self.seed}"

    def overrides(self, study: str) -> list[str]:
        """The `-S` overrides of its `dvc exp run` (everything else as in params.yaml)."""
        out = [f"study={study}", f"seed={self.seed}", f"fuse.method={self.method}"]
        if self.cap is not None:
            out += [f"split.train_per_class={self.cap}", "split.keep_ratio=true"]
        return out


@dataclass(frozen=True)
class Study:
    name: str
    seeds: tuple[int, ...]
    methods: tuple[str, ...]  # compared on all the real training data
    caps: tuple[int, ...]  # low-data regime: minority images kept, ratio kept
    cap_methods: tuple[str, ...]  # compared at every cap
    set: tuple[str, ...]  # extra `-S` overrides for every experiment

    def cells(self, seeds: tuple[int, ...] | None = None) -> list[Cell]:
        """Every experiment, seed by seed (so a partial run leaves whole seeds)."""
        out = []
        for seed in seeds or self.seeds:
            out += [Cell(m, None, seed) for m in self.methods]
            out += [Cell(m, cap, seed) for cap in self.caps for m in self.cap_methods]
        return out


def load_study(path: Path) -> Study:
    """Read a study file; errors name the file, key and value."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ParamsError(f"{path}: cannot read study file: {err}") from None
    keys = {"name", "seeds", "methods", "caps", "cap_methods", "set"}
    if not isinstance(raw, dict) or set(raw) != keys:
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ParamsError(f"{path}: expected keys {sorted(keys)}, got {got}")

    def ints(key: str, lo: int) -> tuple[int, ...]:
        v = raw[key] or []
        if not isinstance(v, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= lo for i in v
        ):
            raise ParamsError(f"{path}: {key} = {v!r}: expected a list of integers >= {lo}")
        if len(set(v)) != len(v):
            raise ParamsError(f"{path}: {key} = {v!r}: repeated values")
        return tuple(v)

    def methods(key: str) -> tuple[str, ...]:
        v = raw[key] or []
        if not isinstance(v, list) or not set(v) <= set(METHODS) or len(set(v)) != len(v):
            raise ParamsError(f"{path}: {key} = {v!r}: expected distinct items of {METHODS}")
        return tuple(v)

    name = raw["name"]
    if not isinstance(name, str) or not re.fullmatch(NAME, name):
        raise ParamsError(f"{path}: name = {name!r}: must match {NAME}")
    extra = raw["set"] or {}
    if not isinstance(extra, dict):
        raise ParamsError(f"{path}: set = {extra!r}: expected a mapping of param: value")
    owned = {"study", "seed", "fuse.method", "split.train_per_class", "split.keep_ratio"}
    if clash := sorted(owned & set(extra)):
        raise ParamsError(f"{path}: set: {clash} are set per experiment by the study")
    study = Study(
        name=name,
        seeds=ints("seeds", 0),
        methods=methods("methods"),
        caps=ints("caps", 1),
        cap_methods=methods("cap_methods"),
        set=tuple(f"{k}={json.dumps(v)}" for k, v in extra.items()),
    )
    if not study.seeds or not (study.methods or study.caps):
        raise ParamsError(f"{path}: a study needs seeds and methods or caps")
    if study.caps and not study.cap_methods:
        raise ParamsError(f"{path}: caps given but no cap_methods")
    return study


# ---------------------------------------------------------------- experiments in git


def git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def experiment_refs(root: Path, prefix: str) -> dict[str, dict[str, str]]:
    """{baseline commit: {experiment name: ref}} of DVC experiments named `prefix`*."""
    out: dict[str, dict[str, str]] = {}
    for ref in git(root, "for-each-ref", "--format=%(refname)", "refs/exps/").split():
        parts = ref.split("/")  # refs/exps/<sha[:2]>/<sha[2:]>/<name>
        if len(parts) != 5 or not re.fullmatch(r"[0-9a-f]{2}", parts[2]):
            continue
        if parts[4].startswith(prefix):
            out.setdefault(parts[2] + parts[3], {})[parts[4]] = ref
    return out


def _show_json(root: Path, ref: str, path: str) -> dict:
    return json.loads(git(root, "show", f"{ref}:{path}"))


def collect(root: Path, study: Study, baseline: str | None = None) -> tuple[str, pd.DataFrame]:
    """One row per stored experiment of the study: its cell, params check and metrics.

    The experiments come from one baseline commit: `baseline`, or by default the newest
    commit that has any (so experiments of old code never mix with new ones).
    """
    by_base = experiment_refs(root, f"{study.name}-")
    if not by_base:
        raise LookupError(f"no stored experiments named {study.name}-*; run the study first")
    if baseline is None:
        dates = {b: int(git(root, "show", "-s", "--format=%ct", b)) for b in by_base}
        baseline = max(by_base, key=lambda b: (dates[b], b))
    else:
        full = git(root, "rev-parse", baseline).strip()
        if full not in by_base:
            raise LookupError(f"no experiments of {study.name} on {baseline}")
        baseline = full
    refs = by_base[baseline]
    rows = []
    for cell in study.cells():
        ref = refs.get(cell.name(study.name))
        if ref is None:
            continue
        params = yaml.safe_load(git(root, "show", f"{ref}:params.yaml"))
        got = (params["fuse"]["method"], params["split"]["train_per_class"], params["seed"])
        if got != (cell.method, cell.cap, cell.seed) or params.get("study") != study.name:
            raise ValueError(f"{ref}: params {got} do not match its name")
        scores = _show_json(root, ref, "metrics/eval.json")
        split = _show_json(root, ref, "metrics/split.json")["train"]
        fuse = _show_json(root, ref, "metrics/fuse.json")
        gan = _show_json(root, ref, "metrics/gan.json")
        train = _show_json(root, ref, "metrics/train.json")
        rows.append(
            {
                "experiment": cell.name(study.name),
                "method": cell.method,
                "cap": cell.cap or ALL,
                "seed": cell.seed,
                "real_normal": split["normal"],
                "real_pneumonia": split["pneumonia"],
                "synthetic": fuse["synthetic"],
                "oversampled": fuse["oversampled"],
                "gan_fid": gan["synthetic"]["fid"],
                "gan_copies": gan["memorisation"]["share_synthetic"],
                "test_images": scores["n"],
                # older experiments did not record it
                "device": f"{train.get('device', 'unknown')}, torch {train.get('torch', '?')}",
                **{k: scores[k] for k in METRICS},
            }
        )
    return baseline, pd.DataFrame(rows)


# ---------------------------------------------------------------- statistics


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count of every metric per (cap, method)."""
    g = runs.groupby(["cap", "method"], sort=False)[list(METRICS)]
    out = g.agg(["mean", "std", "count"])
    return out


def paired_differences(runs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """a − b per seed, for each pair of methods and cap; mean with a t interval over seeds."""
    rows = []
    for cap, at_cap in runs.groupby("cap", sort=False):
        wide = at_cap.pivot(index="seed", columns="method", values=list(METRICS))
        for a, b in PAIRS:
            if a not in wide["auc"] or b not in wide["auc"]:
                continue
            for metric, (_, higher) in METRICS.items():
                d = (wide[metric][a] - wide[metric][b]).dropna().to_numpy()
                n = d.size
                if n == 0:
                    continue
                mean = float(d.mean())
                if n > 1 and d.std(ddof=1) > 0:
                    low, high = stats.t.interval(
                        level, n - 1, loc=mean, scale=d.std(ddof=1) / np.sqrt(n)
                    )
                else:
                    low = high = float("nan")
                better = int(np.sum(d > 0) if higher else np.sum(d < 0))
                rows.append(
                    {
                        "cap": cap,
                        "a": a,
                        "b": b,
                        "metric": metric,
                        "n": n,
                        "mean": mean,
                        "low": float(low),
                        "high": float(high),
                        "a_better": better,
                    }
                )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- report


def _cap_order(caps) -> list:
    return sorted({c for c in caps if c != ALL}) + ([ALL] if ALL in set(caps) else [])


def _fmt(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {sd:.3f}" if np.isfinite(sd) else f"{mean:.3f}"


def _interval(row) -> str:
    if not np.isfinite(row["low"]):
        return f"{row['mean']:+.3f}"
    return f"{row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"


def figures(runs: pd.DataFrame, out_dir: Path) -> list[str]:
    """Per-seed points and means; returns the figure file names."""
    names = []
    full = runs[runs["cap"] == ALL]
    if not full.empty:
        shown = ["auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity"]
        fig, axes = plt.subplots(1, len(shown), figsize=(3 * len(shown), 3.2))
        methods = [m for m in METHODS if m in set(full["method"])]
        for ax, metric in zip(axes, shown, strict=True):
            for i, m in enumerate(methods):
                v = full.loc[full["method"] == m, metric].to_numpy()
                color = f"C{METHODS.index(m)}"
                ax.scatter(np.full(v.size, i), v, s=14, alpha=0.6, color=color)
                ax.plot([i - 0.25, i + 0.25], [v.mean()] * 2, color=color, lw=2)
            ax.set_xticks(range(len(methods)), methods)
            ax.set_xlim(-0.6, len(methods) - 0.4)
            ax.set_title(METRICS[metric][0])
            ax.grid(axis="y", alpha=0.3)
        fig.suptitle("all real training images: per seed (dots) and mean (bar)")
        fig.tight_layout()
        _save_fig(fig, out_dir / "methods.png")
        names.append("methods.png")
    if runs["cap"].nunique() > 1:
        shown = ["auc", "balanced_accuracy", "sensitivity", "specificity"]
        fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown), 3.2))
        for ax, metric in zip(axes, shown, strict=True):
            for i, m in enumerate(METHODS):
                sub = runs[runs["method"] == m]
                if sub["cap"].nunique() < 2:
                    continue
                color = f"C{i}"
                g = sub.groupby("real_normal")[metric]
                x = np.array(sorted(g.groups))
                mean, sd = g.mean().loc[x].to_numpy(), g.std().loc[x].fillna(0).to_numpy()
                ax.plot(x, mean, marker="o", ms=3, color=color, label=m)
                ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.15)
            ax.set_xscale("log")
            ax.set_xlabel("real normal training images")
            ax.set_title(METRICS[metric][0])
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.suptitle("low-data regime: mean ± sd over seeds (class ratio kept)")
        fig.tight_layout()
        _save_fig(fig, out_dir / "low_data.png")
        names.append("low_data.png")
    return names


def report(study: Study, baseline: str, runs: pd.DataFrame, out: Path, command: str) -> None:
    """Write `out` (markdown), its figures and a CSV of every run beside it."""
    assets = out.with_suffix("")
    assets.mkdir(parents=True, exist_ok=True)
    runs = runs.sort_values(["seed", "cap", "method"], key=_sort_key).reset_index(drop=True)
    runs.to_csv(assets / "runs.csv", index=False, float_format="%.6g")
    summary, diffs = summarise(runs), paired_differences(runs)
    figs = figures(runs, assets)
    seeds = sorted(set(runs["seed"]))
    expected = len(study.cells())
    n_test = ", ".join(map(str, sorted(set(runs["test_images"]))))
    devices = "; ".join(f"{n} on {d}" for d, n in sorted(runs["device"].value_counts().items()))
    lines = [
        f"# Study `{study.name}`: does GAN balancing help, and when?",
        "",
        f"Generated by `{command}` from {len(runs)} of the study's {expected} experiments "
        f"({'seed' if len(seeds) == 1 else 'seeds'} {', '.join(map(str, seeds))}), "
        f"all run on commit `{baseline[:10]}`. "
        "Every number below is read back from the experiments' own `metrics/*.json`; "
        f"per-run values are in [`{assets.name}/runs.csv`]({assets.name}/runs.csv).",
        "",
        f"Classifiers trained: {devices}. Training on other hardware or another torch build "
        "takes a different floating-point path from the first step on, so a rerun elsewhere "
        "reproduces these figures up to run-to-run noise, not digit for digit.",
        "",
        f"All figures are on the real test split ({n_test} images), threshold 0.5. "
        "Methods: `none` trains on the real images only, `oversample` repeats real normal "
        "images up to a 1:1 ratio, `gan` adds DCGAN images up to 1:1. A cap keeps that many "
        "real normal training images and pneumonia ones in their original ratio to them, "
        "drawn with the seed.",
        "",
    ]
    if study.set:
        lines += [f"Params changed for every experiment: `{' '.join(study.set)}`.", ""]
    lines += ["## Mean ± sd over seeds", ""]
    for cap in _cap_order(runs["cap"]):
        title = "all real training images" if cap == ALL else f"cap {cap}"
        at = runs[runs["cap"] == cap].iloc[0]
        lines += [
            f"**{title}** ({at['real_normal']} normal, {at['real_pneumonia']} pneumonia real):",
            "",
            "| method | n | " + " | ".join(lbl for lbl, _ in METRICS.values()) + " |",
            "|---|---|" + "---|" * len(METRICS),
        ]
        for m in METHODS:
            if (cap, m) not in summary.index:
                continue
            row = summary.loc[(cap, m)]
            cells = [_fmt(row[(k, "mean")], row[(k, "std")]) for k in METRICS]
            lines.append(f"| {m} | {int(row[('auc', 'count')])} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Differences between methods",
        "",
        "Paired by seed (same split, same cap, same test set): mean of a − b with a 95% "
        "t interval over seeds, and in how many seeds a did better. The interval reflects "
        "training variability across seeds, not the sampling error of the test set (see "
        "the bootstrap intervals in `metrics/eval.json` for that). An interval that "
        "contains 0 means no difference was shown.",
        "",
    ]
    if diffs.empty:
        lines += ["No pair of methods shares a seed yet.", ""]
    else:
        shown = ["auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "brier"]
        lines += [
            "| cap | a − b | n | " + " | ".join(METRICS[k][0] for k in shown) + " |",
            "|---|---|---|" + "---|" * len(shown),
        ]
        for cap in _cap_order(diffs["cap"]):
            for a, b in PAIRS:
                sub = diffs[(diffs["cap"] == cap) & (diffs["a"] == a) & (diffs["b"] == b)]
                if sub.empty:
                    continue
                by = sub.set_index("metric")
                cells = [
                    f"{_interval(by.loc[k])} ({by.loc[k, 'a_better']}/{by.loc[k, 'n']})"
                    for k in shown
                ]
                lines.append(
                    f"| {cap} | {a} − {b} | {by['n'].iloc[0]} | " + " | ".join(cells) + " |"
                )
        lines.append("")
    if figs:
        lines += ["## Figures", ""] + [f"![{f}]({assets.name}/{f})" for f in figs] + [""]
    gan_runs = runs[runs["method"] == "gan"]
    if not gan_runs.empty:
        lines += [
            "## GAN quality per cap",
            "",
            "From each `gan` experiment's `metrics/gan.json`, mean ± sd over seeds: FID of the "
            "synthetic normal images against the real training ones (reference-network "
            "features), and the share of likely copies (synthetic images nearer to a training "
            "image than 95% of held-out real images are). With a handful of training images "
            "a small FID can mean the GAN reproduces them: read it with the copies.",
            "",
            "| cap | synthetic images added | FID | likely copies |",
            "|---|---|---|---|",
        ]
        for cap in _cap_order(gan_runs["cap"]):
            g = gan_runs[gan_runs["cap"] == cap]
            lines.append(
                f"| {cap} | {int(g['synthetic'].mean())} | "
                f"{_fmt(g['gan_fid'].mean(), g['gan_fid'].std())} | "
                f"{g['gan_copies'].mean():.1%} |"
            )
        lines.append("")
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines))


def headline(runs: pd.DataFrame) -> str:
    """The README's summary of a report: methods on all the data, and gan − none per cap."""
    runs = runs.sort_values(["seed", "cap", "method"], key=_sort_key)
    summary, diffs = summarise(runs), paired_differences(runs)
    shown = ["auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity"]
    lines = [
        "| all real images | n | " + " | ".join(METRICS[k][0] for k in shown) + " |",
        "|---|---|" + "---|" * len(shown),
    ]
    for m in METHODS:
        if (ALL, m) in summary.index:
            row = summary.loc[(ALL, m)]
            cells = [_fmt(row[(k, "mean")], row[(k, "std")]) for k in shown]
            lines.append(f"| {m} | {int(row[('auc', 'count')])} | " + " | ".join(cells) + " |")
    gain = diffs[(diffs["a"] == "gan") & (diffs["b"] == "none")] if len(diffs) else diffs
    if len(gain):
        lines += [
            "",
            "| gan − none, real normal images | n | AUC | balanced accuracy |",
            "|---|---|---|---|",
        ]
        for cap in _cap_order(gain["cap"]):
            by = gain[gain["cap"] == cap].set_index("metric")
            n_normal = runs.loc[runs["cap"] == cap, "real_normal"].iloc[0]
            cells = [
                f"{_interval(by.loc[k])} ({by.loc[k, 'a_better']}/{by.loc[k, 'n']})"
                for k in ("auc", "balanced_accuracy")
            ]
            lines.append(f"| {n_normal} | {by['n'].iloc[0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _sort_key(col: pd.Series) -> pd.Series:
    if col.name == "cap":
        return col.map(lambda c: float("inf") if c == ALL else float(c))
    if col.name == "method":
        return col.map(METHODS.index)
    return col
