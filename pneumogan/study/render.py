"""A study's report: markdown tables, figures and the runs table, all from stored experiments.

Every description of a method (ratio, generator, threshold, minority class) is read from the
experiments' own params and metrics, never typed here, so a study that sets `gan.variant`,
`fuse.target_ratio` or `evaluate.threshold` is described as it ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pneumogan.core.choices import LABELS
from pneumogan.core.files import write_text
from pneumogan.core.registry import GENERATORS
from pneumogan.generate import nets as _generators  # noqa: F401  (fills GENERATORS)
from pneumogan.report.figures import new_figure, save_figure
from pneumogan.report.markdown import table
from pneumogan.study.spec import ALL, PLAIN, Cell, Study
from pneumogan.study.stats import (
    METRICS,
    cap_order,
    method_order,
    paired_differences,
    pairs,
    sort_key,
    summarise,
)


def _fmt(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {sd:.3f}" if np.isfinite(sd) else f"{mean:.3f}"


def _interval(row) -> str:
    if not np.isfinite(row["low"]):
        return f"{row['mean']:+.3f}"
    return f"{row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"


def _values(runs: pd.DataFrame, column: str, fmt=str) -> str:
    """The distinct values of a column, as one phrase ('1' or '0.5 or 1')."""
    return " or ".join(fmt(v) for v in sorted(set(runs[column])))


def generator_name(sub: pd.DataFrame) -> str:
    """The generator of a generator arm's experiments, from their params ('DCGAN with
    DiffAugment (color, translation)')."""
    names = []
    for variant, aug in sorted(set(zip(sub["gan_variant"], sub["gan_diffaugment"], strict=True))):
        name = GENERATORS.get(variant).title if variant in GENERATORS else variant
        names.append(f"{name} with DiffAugment ({aug.replace('+', ', ')})" if aug else name)
    return " or ".join(names)


def describe_methods(runs: pd.DataFrame) -> str:
    """One sentence per method present, from the experiments' params."""
    minority = _values(runs, "minority")
    parts = []
    for method in method_order(runs["method"]):
        sub = runs[runs["method"] == method]
        ratio = _values(sub, "target_ratio", lambda v: f"{v:g}")
        if method == "none":
            parts.append("`none` trains on the real images only")
        elif method == "oversample":
            parts.append(
                f"`oversample` repeats real {minority} images up to a {minority} : other "
                f"ratio of {ratio}"
            )
        elif method == "weighted":
            parts.append(
                f"`weighted` adds no images and weights the {minority} class's loss up so that "
                f"its images weigh {ratio} times the other class's in all"
            )
        else:
            parts.append(
                f"`{method}` adds {generator_name(sub)} images of the {minority} class up to "
                f"a ratio of {ratio}"
            )
    return "Methods: " + "; ".join(parts) + "."


def method_table(summary: pd.DataFrame, cap, shown: list[str], first: str = "method") -> list[str]:
    """Mean ± sd of the `shown` metrics per method at `cap`, as table lines; `first` heads
    the method column."""
    rows = []
    for m in method_order(summary.index.get_level_values("method")):
        if (cap, m) in summary.index:
            row = summary.loc[(cap, m)]
            cells = [_fmt(row[(k, "mean")], row[(k, "std")]) for k in shown]
            rows.append([m, str(int(row[("auc", "count")])), *cells])
    header = [first, "n", *(METRICS[k][0] for k in shown)]
    return table(header, rows, ["left"] + ["right"] * (len(header) - 1)).splitlines()


def _diff_cells(by: pd.DataFrame, shown: list[str]) -> list[str]:
    return [f"{_interval(by.loc[k])} ({by.loc[k, 'a_better']}/{by.loc[k, 'n']})" for k in shown]


def figures(runs: pd.DataFrame, out_dir: Path) -> list[str]:
    """Per-seed points and means; returns the figure file names."""
    names, order = [], method_order(runs["method"])
    full = runs[runs["cap"] == ALL]
    if not full.empty:
        shown = ["auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity"]
        fig = new_figure(figsize=(3 * len(shown), 3.2))
        axes = fig.subplots(1, len(shown))
        methods = method_order(full["method"])
        for ax, metric in zip(axes, shown, strict=True):
            for i, m in enumerate(methods):
                v = full.loc[full["method"] == m, metric].to_numpy()
                color = f"C{order.index(m)}"
                ax.scatter(np.full(v.size, i), v, s=14, alpha=0.6, color=color)
                ax.plot([i - 0.25, i + 0.25], [v.mean()] * 2, color=color, lw=2)
            ax.set_xticks(range(len(methods)), methods)
            ax.set_xlim(-0.6, len(methods) - 0.4)
            ax.set_xlabel("method")
            ax.set_title(METRICS[metric][0])
            ax.grid(axis="y", alpha=0.3)
        fig.suptitle("all real training images: per seed (dots) and mean (bar)")
        save_figure(fig, out_dir / "methods.png")
        names.append("methods.png")
    if runs["cap"].nunique() > 1:
        shown = ["auc", "balanced_accuracy", "sensitivity", "specificity"]
        fig = new_figure(figsize=(3.4 * len(shown), 3.2))
        axes = fig.subplots(1, len(shown))
        for ax, metric in zip(axes, shown, strict=True):
            for i, m in enumerate(order):
                sub = runs[runs["method"] == m]
                if sub["cap"].nunique() < 2:
                    continue
                g = sub.groupby("real_normal")[metric]
                x = np.array(sorted(g.groups))
                mean, sd = g.mean().loc[x].to_numpy(), g.std().loc[x].fillna(0).to_numpy()
                ax.plot(x, mean, marker="o", ms=3, color=f"C{i}", label=m)
                ax.fill_between(x, mean - sd, mean + sd, color=f"C{i}", alpha=0.15)
            ax.set_xscale("log")
            ax.set_xlabel("real normal training images")
            ax.set_title(METRICS[metric][0])
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.suptitle("low-data regime: mean ± sd over seeds (class ratio kept)")
        save_figure(fig, out_dir / "low_data.png")
        names.append("low_data.png")
    return names


def _differences(runs: pd.DataFrame, diffs: pd.DataFrame) -> list[str]:
    """The report's section of paired differences between methods."""
    lines = [
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
        return [*lines, "No pair of methods shares a seed yet.", ""]
    shown = ["auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "brier"]
    rows = []
    for cap in cap_order(diffs["cap"]):
        for a, b in pairs(runs["method"]):
            sub = diffs[(diffs["cap"] == cap) & (diffs["a"] == a) & (diffs["b"] == b)]
            if not sub.empty:
                by = sub.set_index("metric")
                rows.append([str(cap), f"{a} − {b}", str(by["n"].iloc[0]), *_diff_cells(by, shown)])
    header = ["cap", "a − b", "n", *(METRICS[k][0] for k in shown)]
    align = ["left", "left"] + ["right"] * (len(header) - 2)
    return [*lines, table(header, rows, align), ""]


def report(
    study: Study, runs: pd.DataFrame, out: Path, command: str, gpu_left: Sequence[Cell] = ()
) -> None:
    """Write `out` (markdown), its figures and a CSV of every run beside it; `gpu_left` are
    the cells marked `gpu` that have not run yet."""
    assets = out.with_suffix("")
    assets.mkdir(parents=True, exist_ok=True)
    runs = runs.sort_values(["seed", "cap", "method"], key=sort_key).reset_index(drop=True)
    runs.to_csv(assets / "runs.csv", index=False, float_format="%.6g")
    summary, diffs = summarise(runs), paired_differences(runs)
    figs = figures(runs, assets)
    seeds = sorted(set(runs["seed"]))
    n_test = ", ".join(map(str, sorted(set(runs["test_images"]))))
    inputs = (
        f"the params.yaml and pipeline code of commit {study.pipeline} (the study file's "
        "`pipeline`)"
        if study.pipeline
        else "the pipeline inputs of the current code"
    )
    compares = len({*study.methods, *study.cap_methods}) > 1  # else: one method over seeds
    lines = [
        f"# Study `{study.report_name}`" + (": does balancing help, and when?" if compares else ""),
        "",
        f"Generated by `{command}` from {len(runs)} of the study's {len(study.cells())} "
        f"experiments ({'seed' if len(seeds) == 1 else 'seeds'} {', '.join(map(str, seeds))}), "
        f"each run with {inputs}. Every number below is read "
        "back from the experiments' own params and `metrics/*.json`; per-run values are in "
        f"[`{assets.name}/runs.csv`]({assets.name}/runs.csv).",
        "",
        f"All figures are on the real test split ({n_test} images), at threshold "
        f"{_values(runs, 'threshold', lambda v: f'{v:g}')}. {describe_methods(runs)}"
        + (
            " A cap keeps that many real minority training images, and the other class in its "
            "original ratio to them, drawn with the seed."
            if study.caps
            else ""
        ),
        "",
    ]
    if study.set:
        lines += [f"Params changed for every experiment: `{' '.join(study.set)}`.", ""]
    lines += ["## Mean ± sd over seeds", ""]
    for cap in cap_order(runs["cap"]):
        title = "all real training images" if cap == ALL else f"cap {cap}"
        at = runs[runs["cap"] == cap].iloc[0]
        lines += [
            f"**{title}** ({at['real_normal']} normal, {at['real_pneumonia']} pneumonia real):",
            "",
            *method_table(summary, cap, list(METRICS)),
            "",
        ]
    if compares:
        lines += _differences(runs, diffs)
    if figs:
        lines += ["## Figures", ""] + [f"![{f}]({assets.name}/{f})" for f in figs] + [""]
    gan_runs = runs[~runs["method"].isin(PLAIN)]
    if not gan_runs.empty:
        lines += [
            "## Synthesis quality per cap",
            "",
            "From each generator arm's `metrics/gan.json`, mean ± sd over seeds: FID of the "
            "synthetic images against the real training ones of their class (reference-network "
            "features), and the share of likely copies (synthetic images nearer to a training "
            "image than all but a few held-out real images are). With a handful of training "
            "images a small FID can mean the generator reproduces them: read it with the copies.",
            "",
        ]
        rows = [
            [
                str(cap),
                method,
                str(int(g["synthetic"].mean())),
                _fmt(g["gan_fid"].mean(), g["gan_fid"].std()),
                f"{g['gan_copies'].mean():.1%}",
            ]
            for cap, method, g in _arm_groups(gan_runs)
        ]
        header = ["cap", "method", "synthetic images added", "FID", "likely copies"]
        lines += [table(header, rows, ["left", "left", "right", "right", "right"]), ""]
    lines += _per_class(gan_runs) + _gpu_left(study, gpu_left)
    write_text(out, "\n".join(lines))


def _arm_groups(gan_runs: pd.DataFrame) -> Iterator[tuple[object, str, pd.DataFrame]]:
    """(cap, method, its runs) of every generator arm at every cap, in report order."""
    for cap in cap_order(gan_runs["cap"]):
        for method in method_order(gan_runs["method"]):
            g = gan_runs[(gan_runs["cap"] == cap) & (gan_runs["method"] == method)]
            if not g.empty:
                yield cap, method, g


def _per_class(gan_runs: pd.DataFrame) -> list[str]:
    """The section on what each class's images look like to the reference network."""
    if gan_runs.empty:
        return []
    names = [n for n in LABELS.values() if gan_runs[f"gan_agreement_{n}"].notna().any()]
    lines = [
        "## Does the generator draw the class it is asked for?",
        "",
        "Mean over seeds of the share of drawn images that the reference classifier (trained on "
        "real images only) assigns to the asked class (its share on held-out real images of "
        "that class is the ceiling, in brackets), and, for the conditional generators, which "
        "draw both classes, each class's FID against that class's held-out images. "
        "Unconditional generators draw the minority class only.",
        "",
    ]
    rows = []
    for cap, method, g in _arm_groups(gan_runs):
        cells = [f"{g['gan_agreement'].mean():.0%} ({g['gan_agreement_real'].mean():.0%})"]
        for name in names:
            agree, fid = g[f"gan_agreement_{name}"], g[f"gan_fid_heldout_{name}"]
            cells += [
                "" if agree.isna().all() else f"{agree.mean():.0%}",
                "" if fid.isna().all() else _fmt(fid.mean(), fid.std()),
            ]
        rows.append([str(cap), method, *cells])
    header = ["cap", "method", "minority drawn as minority (real)"]
    for name in names:
        header += [f"{name} drawn as {name}", f"{name} FID to held-out {name}"]
    return [*lines, table(header, rows, ["left", "left"] + ["right"] * (len(header) - 2)), ""]


def _gpu_left(study: Study, left: Sequence[Cell]) -> list[str]:
    """The cells marked `gpu` that have not run, by method and cap."""
    if not left:
        return []
    by: dict[tuple[str, str], list[int]] = {}
    for cell in left:
        by.setdefault((cell.method, str(cell.cap or ALL)), []).append(cell.seed)
    rows = [[m, cap, ", ".join(map(str, seeds))] for (m, cap), seeds in by.items()]
    return [
        "## Cells left for a GPU",
        "",
        f"{len(left)} cells the study file marks `gpu` (too slow for a CPU; see "
        "`reports/generator_costs.md` for each arm's measured cost per cell) have not run. "
        "On a machine where torch sees a GPU, `scripts/study.py run --gpu` runs only these.",
        "",
        table(["method", "cap", "seeds left"], rows, ["left", "left", "left"]),
        "",
    ]


def headline(runs: pd.DataFrame) -> str:
    """The README's summary of a report: methods on all the data, and per cap each generator
    arm against oversampling and oversampling against none (in a study without oversampling,
    each method against none)."""
    runs = runs.sort_values(["seed", "cap", "method"], key=sort_key)
    summary, diffs = summarise(runs), paired_differences(runs)
    shown = ["auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity"]
    has_all = bool((runs["cap"] == ALL).any())  # a study run cap by cap may not have it yet
    lines = method_table(summary, ALL, shown, first="all real images") if has_all else []
    compared = pairs(runs["method"])  # against oversampling where it ran, else against none
    wanted = [p for p in compared if p[1] == "oversample" and p[0] not in PLAIN]
    wanted += [p for p in compared if p == ("oversample", "none")]
    wanted = wanted or [p for p in compared if p[1] == "none"]
    rows = []
    for a, b in wanted if len(diffs) else []:
        for cap in cap_order(runs["cap"]):
            sub = diffs[(diffs["cap"] == cap) & (diffs["a"] == a) & (diffs["b"] == b)]
            if sub.empty:
                continue
            by = sub.set_index("metric")
            n_normal = runs.loc[runs["cap"] == cap, "real_normal"].iloc[0]
            cells = _diff_cells(by, ["auc", "balanced_accuracy"])
            rows.append([f"{a} − {b}", str(n_normal), str(by["n"].iloc[0]), *cells])
    if rows:
        header = ["a − b", "real normal images", "n", "AUC", "balanced accuracy"]
        lines += ["", table(header, rows, ["left"] + ["right"] * 4)]
    return "\n".join(lines).strip("\n") + "\n"
