"""Render every generated block of README.md and docs/ from the committed files.

    uv run python scripts/update_docs.py           # rewrite the blocks that differ
    uv run python scripts/update_docs.py --check   # only list them; exit 1 if any

A block is what stands between `<!-- name:begin -->` and `<!-- name:end -->` in README.md or
any docs/**/*.md page (docs/params.md excepted: scripts/params_doc.py writes all of it).
`RENDER` maps each name to the function that makes it from committed files: metrics/*.json,
reports/ (the study reports and their runs.csv), studies/*.yaml, dvc.yaml, params.yaml and
docs/published.yaml. Figures in the docs come from here, never from a keyboard:
tests/docs/test_docs.py fails when a block differs from what this script renders, and when
a figure stands in prose outside a block.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python scripts/update_docs.py` from anywhere

from pneumogan.classify import nets as _classifiers  # noqa: E402, F401  (fills the registries)
from pneumogan.core.params import Params, load_params  # noqa: E402
from pneumogan.generate import nets as _generators  # noqa: E402, F401
from pneumogan.report.markdown import replace_block, results_table, table  # noqa: E402

BLOCK = re.compile(r"<!-- ([\w-]+):begin -->\n(.*?)<!-- \1:end -->", flags=re.S)
GENERATED_ELSEWHERE = {"docs/params.md"}  # written whole by scripts/params_doc.py
PREDICT_EXAMPLE = (0, 1, 100, 623)  # test images shown in the `pneumogan predict` example


def captured(name: str, fence: str | None = "text") -> Callable[[], str]:
    """What a command printed in a real run, as scripts/review_example.py recorded it."""

    def render() -> str:
        path = ROOT / "reports" / "review" / f"{name}.txt"
        if not path.is_file():
            sys.exit(f"{path.relative_to(ROOT)} is missing: run scripts/review_example.py")
        text = path.read_text().rstrip("\n") + "\n"
        return f"```{fence}\n{text}```\n" if fence else text

    return render


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every docs page this script renders blocks in."""
    docs = sorted((root / "docs").rglob("*.md"))
    found = [root / "README.md", *docs]
    return [p for p in found if p.relative_to(root).as_posix() not in GENERATED_ELSEWHERE]


def json_file(rel: str) -> dict:
    return json.loads((ROOT / rel).read_text())


@cache
def params() -> Params:
    """params.yaml, validated as check_params validates it (the registries filled first)."""
    return load_params(ROOT / "params.yaml")


def yaml_file(rel: str) -> dict:
    return yaml.safe_load((ROOT / rel).read_text())


@cache
def study_runs(name: str):
    """reports/<name>/runs.csv, as `scripts/study.py report` wrote it, with integer caps."""
    import pandas as pd

    from pneumogan.study.spec import ALL

    runs = pd.read_csv(ROOT / "reports" / name / "runs.csv")
    runs["cap"] = runs["cap"].map(lambda c: c if c == ALL else int(c))
    return runs


def report_section(rel: str, heading: str) -> str:
    """The text under `## heading` of a committed report, links turned into plain text (the
    report's relative links do not resolve from docs/)."""
    text = (ROOT / rel).read_text()
    parts = re.split(r"^## (.+)\n", text, flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    if heading not in sections:
        raise KeyError(f"{rel} has no section '## {heading}'")
    body = re.sub(r"!?\[([^\]]*)\]\(([^)]*)\)", r"\1", sections[heading]).strip()
    return body + "\n"


def _mean_sd(values) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


# ---- the committed run -----------------------------------------------------------------


def results() -> str:
    """Test metrics of the committed run (metrics/eval.json) with bootstrap intervals."""
    level = params().evaluate.ci_level
    return results_table(json_file("metrics/eval.json"), level)


def evaluate_log() -> str:
    """The summary line `evaluate` logged for the committed run (from metrics/eval.json)."""
    from pneumogan.evaluate.metrics import summary_line

    level = params().evaluate.ci_level
    return f"```\n{summary_line(json_file('metrics/eval.json'), level)}\n```\n"


def split_counts() -> str:
    """Images per split and class (metrics/split.json), and the threshold each prevalence
    would call for in a model calibrated to a 1 : 1 prior."""
    split = json_file("metrics/split.json")
    header = ["split", "normal", "pneumonia", "total", "normal : pneumonia", "pneumonia share π"]
    rows = []
    for name in ("train", "val", "test"):
        s = split[name]
        share = s["pneumonia"] / s["total"]
        ratio = f"1 : {s['pneumonia'] / s['normal']:.1f}"
        counts = [str(s[k]) for k in ("normal", "pneumonia", "total")]
        rows.append([name, *counts, ratio, f"{share:.3f}", f"{1 - share:.3f}"])
    return table([*header, "1 − π"], rows, ["left", *["right"] * 6]) + "\n"


def export_parity() -> str:
    """The ONNX graph against torch on the test split (metrics/export.json)."""
    export = json_file("metrics/export.json")
    tolerance = params().export.max_abs_diff
    flips = export["label_flips"]
    return (
        f"On the committed model, onnxruntime and torch differ by at most "
        f"{export['max_abs_diff']:.2g} in P(pneumonia) over the {export['n']} test images "
        f"(`export.max_abs_diff` allows {tolerance:g}), and {flips} "
        f"label{'' if flips == 1 else 's'} differ at `evaluate.threshold` "
        "(`metrics/export.json`).\n"
    )


def predict_example() -> str:
    """What `pneumogan predict` prints for PNGs of a few test images: the probabilities
    `evaluate` wrote for them (metrics/eval/predictions.csv), in the CLI's own table."""
    from pneumogan.serve.cli import table
    from pneumogan.serve.threshold import call, gate_word

    with (ROOT / "metrics/eval/predictions.csv").open() as f:
        rows = {int(r["index"]): r for r in csv.DictReader(f) if r["split"] == "test"}
    scores = json_file("metrics/eval.json")
    threshold = scores["threshold"]
    # a model with an input gate: its threshold, and each image's score (predictions.csv)
    gate = scores["gate"]["threshold"] if "gate" in scores else None
    shown = []
    for i in PREDICT_EXAMPLE:  # the npz's test image i
        p = float(rows[i]["probability"])
        score = float(rows[i]["ood_score"]) if gate is not None else None
        flagged = None if score is None else score > gate
        shown.append(
            {
                "file": f"xrays/test_{i:03d}.png",
                "p_normal": 1.0 - p,
                "p_pneumonia": p,
                "ood_score": score,
                "gate": gate_word(flagged),
                "label": call(p, threshold, flagged),
            }
        )
    out = table(shown, threshold, "metrics/eval.json: evaluate.threshold", gate)
    listed = ", ".join(map(str, PREDICT_EXAMPLE[:-1])) + f" and {PREDICT_EXAMPLE[-1]}"
    return (
        f"For PNGs of test images {listed} it prints, to six digits, the probabilities "
        "`evaluate` wrote for them (`metrics/eval/predictions.csv`):\n\n"
        f"```\n$ uv run pneumogan predict xrays/\n{out}\n```\n"
    )


# ---- studies ---------------------------------------------------------------------------


def study_block(name: str) -> Callable[[], str]:
    def render() -> str:
        from pneumogan.study.render import headline

        return headline(study_runs(name))

    render.__doc__ = f"The summary of reports/{name}.md, from reports/{name}/runs.csv."
    return render


def balancing_design(path: str) -> Callable[[], str]:
    def render() -> str:
        return design(yaml_file(path))

    render.__doc__ = f"What the study file {path} runs."
    return render


def design(study: dict) -> str:
    arms = "; ".join(
        f"`{name}` ({', '.join(f'`{k}: {v}`' for k, v in sets.items()) or 'params.yaml as it is'})"
        for name, sets in study["generators"].items()
    )
    caps = ", ".join(map(str, study["caps"]))
    seeds = ", ".join(map(str, study["seeds"]))
    methods = ", ".join(f"`{m}`" for m in study["methods"])
    cells = len(study["seeds"]) * (
        len(study["methods"]) + len(study["caps"]) * len(study["cap_methods"])
    )
    pinned = (
        f"pinned to pipeline commit `{study['pipeline']}`"
        if study.get("pipeline")
        else "run with the checkout's pipeline"
    )
    gpu = "; ".join(
        f"`{m}` at {', '.join(map(str, caps))}" for m, caps in (study.get("gpu") or {}).items()
    )
    return (
        f"- methods on all the real training images: {methods};\n"
        f"- generator arms (`fuse.method: gan` with these `gan` params): {arms};\n"
        f"- caps on the real normal training images: {caps}, pneumonia kept at its original "
        f"multiple (`split.keep_ratio`), for each of {len(study['cap_methods'])} methods;\n"
        f"- seeds {seeds}: {cells} experiments in all, {pinned}"
        + (f"; cells marked for a GPU: {gpu}" if gpu else "")
        + ".\n"
    )


def balancing_verdict() -> str:
    """Every paired interval between a generator arm and oversampling, counted by its sign."""
    from pneumogan.study.spec import PLAIN
    from pneumogan.study.stats import METRICS, paired_differences

    runs = study_runs("balancing_v1")
    wins, losses, total = verdict_counts(runs, paired_differences(runs), PLAIN, METRICS)
    arms = ", ".join(f"`{a}`" for a in sorted(set(runs["method"]) - set(PLAIN)))
    clear = wins + losses
    found = (
        "found no generator arm that beats oversampling"
        if not wins
        else f"found a generator arm ahead of oversampling in {wins} comparisons"
    )
    signs = (
        f"and all {clear} are losses for the generator"
        if not wins
        else f"{losses} losses and {wins} wins for the generator"
    )
    return (
        f"The balancing study's first round ({len(runs)} experiments: "
        f"{runs['method'].nunique()} methods at {runs['cap'].nunique()} data sizes, "
        f"{runs['seed'].nunique()} seeds each) {found}. "
        f"Of the {total} paired comparisons of a generator arm ({arms}) with `oversample`, at "
        f"every data size and in {len(METRICS)} test metrics, {clear} have a 95% interval "
        f"clear of 0, {signs}.\n"
    )


def verdict_counts(runs, diffs, plain, metrics) -> tuple[int, int, int]:
    """(wins, losses, comparisons) of generator arms against oversampling, where a win or a
    loss is a paired interval clear of 0 on the generator's better or worse side."""
    rows = diffs[(diffs["b"] == "oversample") & ~diffs["a"].isin(plain)]
    wins = losses = 0
    for _, r in rows.iterrows():
        higher = metrics[r["metric"]][1]
        if r["low"] > 0 or r["high"] < 0:
            better = (r["low"] > 0) == higher
            wins, losses = wins + better, losses + (not better)
    return wins, losses, len(rows)


def paired_table(
    a_name: str, b_name: str, a_label: str, b_label: str, b_method: str = "oversample"
) -> Callable[[], str]:
    """Study `a_name` − study `b_name` (its `b_method` cells on all images), paired by seed."""

    def render() -> str:
        from pneumogan.study.spec import ALL
        from pneumogan.study.stats import METRICS, paired_summary

        a = study_runs(a_name)
        b = study_runs(b_name)
        b = b[(b["method"] == b_method) & (b["cap"] == ALL)]
        both = a.merge(b, on="seed", suffixes=("_a", "_b"))
        seeds = ", ".join(map(str, both["seed"]))
        header = [
            f"{a_label} − {b_label}, seeds {seeds}",
            "n",
            "mean [95% t interval]",
            f"seeds where {a_name} did better",
        ]
        rows = []
        for metric, (label, higher) in METRICS.items():
            d = (both[f"{metric}_a"] - both[f"{metric}_b"]).to_numpy()
            s = paired_summary(d, higher)
            interval = f"{s['mean']:+.4f} [{s['low']:+.4f}, {s['high']:+.4f}]"
            rows.append([label, str(s["n"]), interval, f"{s['a_better']}/{s['n']}"])
        return table(header, rows, ["left", "right", "right", "right"]) + "\n"

    render.__doc__ = f"reports/{a_name}/runs.csv − reports/{b_name}/runs.csv, paired by seed."
    return render


def baselines() -> str:
    """Published PneumoniaMNIST results (docs/published.yaml) beside this project's studies."""
    from pneumogan.study.spec import ALL

    published = yaml_file("docs/published.yaml")
    rows = [
        [row["model"], f"{row['auc']:.3f}", f"{row['accuracy']:.3f}", published["source"]]
        for row in published["results"]
    ]
    for name, label in (("default", "the default"), ("larger", "the larger recipe")):
        runs = study_runs(name)
        runs = runs[(runs["method"] == "oversample") & (runs["cap"] == ALL)]
        rows.append(
            [
                f"pneumogan, {label} ({len(runs)} seeds, mean ± sd)",
                _mean_sd(runs["auc"]),
                _mean_sd(runs["accuracy"]),
                f"`reports/{name}.md`",
            ]
        )
    header = ["model", "test AUC", "test accuracy", "source"]
    return table(header, rows, ["left", "right", "right", "left"]) + "\n"


# ---- the pipeline (dvc.yaml) -------------------------------------------------------------


def _stages() -> dict[str, dict]:
    return yaml_file("dvc.yaml")["stages"]


def _outputs(stage: dict) -> list[str]:
    found = []
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key, []):
            found.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return found


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def dag_edges() -> list[tuple[str, str]]:
    """Edges of the stage graph, from each stage's outputs to the stages that read them,
    with the edges implied by longer paths left out (a transitive reduction)."""
    stages = _stages()
    outs = {name: _outputs(s) for name, s in stages.items()}
    edges = {
        (a, b)
        for b, stage in stages.items()
        for dep in stage.get("deps", [])
        for a in stages
        if a != b and any(_inside(dep, o) or _inside(o, dep) for o in outs[a])
    }
    after = {name: {b for a, b in edges if a == name} for name in stages}

    def reachable(a: str, skip: tuple[str, str]) -> set[str]:
        seen, todo = set(), [b for b in after[a] if (a, b) != skip]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(after[node])
        return seen

    order = list(stages)
    kept = [(a, b) for a, b in edges if b not in reachable(a, (a, b))]
    return sorted(kept, key=lambda e: (order.index(e[0]), order.index(e[1])))


def dag() -> str:
    """The stage graph of dvc.yaml, as mermaid."""
    lines = ["```mermaid", "flowchart LR"]
    lines += [f"  {a} --> {b}" for a, b in dag_edges()]
    return "\n".join([*lines, "```"]) + "\n"


def code_reruns() -> str:
    """Which stages list each piece of the package among their deps (dvc.yaml), and the
    modules no stage depends on."""
    stages = _stages()
    deps: dict[str, list[str]] = {}
    for name, stage in stages.items():
        for dep in stage.get("deps", []):
            if dep.startswith("pneumogan/"):
                deps.setdefault(dep, []).append(name)
    everything = set(stages)
    rows = []
    for dep in sorted(deps, key=lambda d: (-len(deps[d]), d)):
        names = deps[dep]
        shown = "every stage" if set(names) == everything else ", ".join(f"`{n}`" for n in names)
        folder = "/" if (ROOT / dep).is_dir() else ""
        rows.append([f"`{dep}{folder}`", shown])
    free = [
        p.relative_to(ROOT).as_posix()
        for p in sorted((ROOT / "pneumogan").rglob("*.py"))
        if p.name != "__init__.py"
        and not any(_inside(p.relative_to(ROOT).as_posix(), d) for d in deps)
    ]
    shown_free = []  # a wing folder no stage depends on is named whole
    for folder in dict.fromkeys(f.rsplit("/", 1)[0] for f in free):
        modules = [p for p in (ROOT / folder).glob("*.py") if p.name != "__init__.py"]
        mine = [f for f in free if f.rsplit("/", 1)[0] == folder]
        shown_free += [f"{folder}/"] if len(mine) == len(modules) else mine
    if shown_free:
        rows.append([", ".join(f"`{f}`" for f in shown_free), "nothing"])
    return table(["you edit", "DVC reruns"], rows, ["left", "left"]) + "\n"


def stage_io() -> str:
    """Each stage's params slice (pneumogan/core/params.py) and outputs (dvc.yaml)."""
    from pneumogan.core.params import PROVENANCE, STAGE_PARAMS

    rows = []
    for name, stage in _stages().items():
        reads = STAGE_PARAMS.get(name, ("all of `params.yaml`",))
        shown = ", ".join(r if r.startswith("all") else f"`{r}`" for r in reads)
        if name in PROVENANCE:
            made_by = ", ".join(f"`{k}`" for k in PROVENANCE[name])
            shown += f"; its slice also carries {made_by}, to log what made the model"
        writes = ", ".join(f"`{o}`" for o in _outputs(stage))
        rows.append([f"`{name}`", shown, writes])
    return table(["stage", "reads params", "writes"], rows, ["left", "left", "left"]) + "\n"


RENDER: dict[str, Callable[[], str]] = {
    "results": results,
    "review-metrics-diff": captured("metrics_diff"),
    "review-exp-show": captured("exp_show", fence=None),
    "review-table": captured("review"),
    "evaluate-log": evaluate_log,
    "split-counts": split_counts,
    "export-parity": export_parity,
    "predict-example": predict_example,
    "study-default": study_block("default"),
    "study-larger": study_block("larger"),
    "study-balancing": study_block("balancing"),
    "study-balancing_v1": study_block("balancing_v1"),
    "balancing-per-class": lambda: report_section(
        "reports/balancing.md", "Does the generator draw the class it is asked for?"
    ),
    "balancing-design": balancing_design("studies/balancing.yaml"),
    "balancing_v1-design": balancing_design("studies/balancing_v1.yaml"),
    "balancing-verdict": balancing_verdict,
    "balancing-quality": lambda: report_section(
        "reports/balancing_v1.md", "Synthesis quality per cap"
    ),
    "generator-costs": lambda: report_section("reports/generator_costs.md", "Minutes per cell"),
    "recipe-differences": lambda: report_section("reports/recipe.md", "Paired differences"),
    "recipe-tta": lambda: report_section("reports/recipe.md", "Test-time augmentation, paired"),
    "larger-vs-default": paired_table(
        "larger", "default", "five networks (larger)", "one network (default)"
    ),
    "default-vs-previous": paired_table(
        "default", "balancing_v1", "today's default", "the previous default (balancing study)"
    ),
    "baselines": baselines,
    "dag": dag,
    "stage-io": stage_io,
    "code-reruns": code_reruns,
}


@cache
def render(name: str) -> str:
    if name not in RENDER:
        raise KeyError(f"unknown block {name!r}: add it to RENDER in scripts/update_docs.py")
    return RENDER[name]()


def blocks(text: str) -> list[tuple[str, str]]:
    """(name, body) of every generated block in a page."""
    return BLOCK.findall(text)


def rendered(text: str) -> str:
    """The page with every block rendered afresh."""
    for name in dict.fromkeys(name for name, _ in blocks(text)):
        text = replace_block(text, name, render(name))
    return text


def stale(root: Path = ROOT) -> list[str]:
    """'page: block' for every block that differs from what RENDER makes."""
    return [
        f"{page.relative_to(root)}: {name}"
        for page in pages(root)
        for name, body in blocks(page.read_text())
        if body != render(name)
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--check", action="store_true", help="list stale blocks; write nothing")
    args = p.parse_args(argv)
    found = stale()
    if args.check:
        print("\n".join(found) or "every block is up to date")
        return 1 if found else 0
    for page in pages():
        text = page.read_text()
        if (new := rendered(text)) != text:
            page.write_text(new)
    print("\n".join(f"updated {f}" for f in found) or "every block is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
