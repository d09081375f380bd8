"""`pneumogan review`: the workspace's evaluation beside another commit's, with the noise.

Both evaluations scored the same real test images (`metrics/eval/predictions.csv`, one row per
image, keyed by where the image sits in the raw file). For each headline metric the review
shows both values, the difference, and a paired bootstrap interval of the difference: the test
images are resampled with replacement, the same resample for both sides, and the metric is
recomputed on each side at that side's own operating threshold. An interval clear of 0 is a
change beyond the noise of the test set; one that holds 0 is within it. The test set is the
only noise the interval sees: a second training seed can move a figure further, which is what
the seed study (`reports/default.md`) measures; where both sides hold one, it is shown too.
"""

from __future__ import annotations

import io
import json
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from pneumogan.core.choices import LABELS
from pneumogan.core.errors import DataError

PREDICTIONS = "metrics/eval/predictions.csv"
EVAL = "metrics/eval.json"
SEED_STUDY = "reports/default/runs.csv"
KEYS = ("split", "index", "file")  # where a test image sits in the raw file
WORKSPACE = "workspace"

# name shown, higher is better
METRICS = {
    "auc": ("AUC", True),
    "accuracy": ("accuracy", True),
    "sensitivity": ("sensitivity", True),
    "specificity": ("specificity", True),
    "balanced_accuracy": ("balanced accuracy", True),
    "brier": ("Brier score", False),
}


def _auc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """AUC of each row of p (resamples × images) against the same rows of y (Mann-Whitney U,
    ties counted half); NaN where a resample holds one class only."""
    pos = y.sum(axis=1)
    neg = y.shape[1] - pos
    ranks = rankdata(p, axis=1)
    u = (ranks * y).sum(axis=1) - pos * (pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((pos > 0) & (neg > 0), u / (pos * neg), np.nan)


def _rate(hit: np.ndarray, where: np.ndarray) -> np.ndarray:
    n = where.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (hit & where).sum(axis=1) / n, np.nan)


def scores(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """The headline metrics of each row of (y, p), 2-D arrays of resamples × images."""
    call = p >= threshold
    sens = _rate(call, y == 1)
    spec = _rate(~call, y == 0)
    return {
        "auc": _auc(y, p),
        "accuracy": (call == (y == 1)).mean(axis=1),
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": (sens + spec) / 2,
        "brier": ((p - y) ** 2).mean(axis=1),
    }


@dataclass(frozen=True)
class Row:
    metric: str
    a: float
    b: float
    low: float  # interval of b - a
    high: float
    verdict: str  # "within noise", "better", "worse"

    @property
    def change(self) -> float:
        return self.b - self.a


def verdict(low: float, high: float, higher_is_better: bool) -> str:
    if np.isnan(low) or np.isnan(high) or low <= 0 <= high:
        return "within noise"
    up = low > 0
    return "better" if up == higher_is_better else "worse"


def paired_bootstrap(
    y: np.ndarray,
    pa: np.ndarray,
    pb: np.ndarray,
    ta: float,
    tb: float,
    *,
    resamples: int,
    level: float,
    rng: np.random.Generator,
    chunk: int | None = None,
) -> list[Row]:
    """Each headline metric of side a (probabilities pa, threshold ta) and side b, and a
    percentile interval of b − a over paired bootstrap resamples of the images."""
    y = np.asarray(y, dtype=np.int64)
    whole_a = scores(y[None], np.asarray(pa)[None], ta)
    whole_b = scores(y[None], np.asarray(pb)[None], tb)
    diffs: dict[str, list[np.ndarray]] = {k: [] for k in METRICS}
    n = y.shape[0]
    chunk = chunk or max(1, 1_000_000 // max(n, 1))  # about 100 MB of work arrays at a time
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        sa, sb = scores(y[idx], pa[idx], ta), scores(y[idx], pb[idx], tb)
        for k in METRICS:
            diffs[k].append(sb[k] - sa[k])
    tail = 50 * (1 - level)
    rows = []
    for k, (_, higher) in METRICS.items():
        d = np.concatenate(diffs[k])
        low, high = (
            np.nanpercentile(d, [tail, 100 - tail]) if np.isfinite(d).any() else (np.nan, np.nan)
        )
        rows.append(
            Row(
                k,
                float(whole_a[k][0]),
                float(whole_b[k][0]),
                float(low),
                float(high),
                verdict(float(low), float(high), higher),
            )
        )
    return rows


# --- the two sides, read from a commit or from the workspace -----------------------------


def git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise DataError(f"git {' '.join(args)}: {out.stderr.strip() or 'failed'}")
    return out.stdout


def read_file(root: Path, rev: str | None, path: str) -> str | None:
    """A file's text at `rev` (None: the workspace), or None when it is not there."""
    if rev is None:
        f = root / path
        return f.read_text() if f.is_file() else None
    out = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True, check=False
    )
    return out.stdout if out.returncode == 0 else None


def _exists(root: Path, ref: str) -> bool:
    check = ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]
    return subprocess.run(check, cwd=root, capture_output=True, check=False).returncode == 0


def default_rev(root: Path) -> str:
    """HEAD on main; elsewhere main, or origin/main where there is no local main (a pull
    request's checkout); no guess beyond that."""
    branch = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    if branch == "main":
        return "HEAD"
    for ref in ("main", "origin/main"):
        if _exists(root, ref):
            return ref
    raise DataError("no main branch to review against: name the revision (pneumogan review REV)")


@dataclass(frozen=True)
class Side:
    name: str  # "workspace" or the revision as given, with its short hash
    predictions: pd.DataFrame
    threshold: float


def read_side(root: Path, rev: str | None) -> Side:
    name = WORKSPACE
    if rev is not None:
        if not _exists(root, rev):
            raise DataError(f"{rev}: no such commit, branch or tag in {root}")
        name = git(root, "rev-parse", "--short", rev).strip()
    where = "the workspace" if rev is None else rev
    text = read_file(root, rev, PREDICTIONS)
    if text is None:
        raise DataError(
            f"{where} has no {PREDICTIONS}: run the pipeline there (dvc repro) and commit its "
            "metrics/ folder"
        )
    try:
        table = pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{where}'s {PREDICTIONS} is not a readable table ({err})") from None
    if not {"split", "index", "actual", "probability"} <= set(table.columns):
        raise DataError(
            f"{where}'s {PREDICTIONS} does not say which test image each row is (it was written "
            "before evaluate recorded each image's place in the raw file): rerun the pipeline "
            "there with this version (dvc repro) and commit, or review against a later commit"
        )
    scores_text = read_file(root, rev, EVAL)
    if scores_text is None:
        raise DataError(f"{where} has no {EVAL}: run the pipeline there (dvc repro)")
    try:
        threshold = float(json.loads(scores_text)["threshold"])
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{where}'s {EVAL} holds no threshold ({err!r})") from None
    return Side(name, table, threshold)


def pair(a: Side, b: Side) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, P(pneumonia) of a, of b) over the test images both sides scored."""
    keys = [k for k in KEYS if k in a.predictions.columns and k in b.predictions.columns]
    if "file" in keys:  # a folder source: the file names the image, whatever else was read
        keys = ["split", "file"]
    both = a.predictions.merge(b.predictions, on=keys, how="inner", suffixes=("_a", "_b"))
    if len(both) != len(a.predictions) or len(both) != len(b.predictions):
        raise DataError(
            f"the two evaluations scored different test images ({len(a.predictions)} in "
            f"{a.name}, {len(b.predictions)} in {b.name}, {len(both)} in both): a paired "
            "review needs the same test split (same data.path and split params)"
        )
    if (both["actual_a"] != both["actual_b"]).any():
        raise DataError(
            "the same test image has different labels on the two sides: the data changed; "
            "review the data change on its own"
        )
    y = (both["actual_a"] == LABELS[1]).to_numpy(dtype=np.int64)
    return y, both["probability_a"].to_numpy(float), both["probability_b"].to_numpy(float)


def seed_studies(root: Path, rev: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Both sides' seed studies (reports/default/runs.csv), when both have one and they differ."""
    a, b = read_file(root, rev, SEED_STUDY), read_file(root, None, SEED_STUDY)
    if a is None or b is None or a == b:
        return None
    return pd.read_csv(io.StringIO(a)), pd.read_csv(io.StringIO(b))


@dataclass(frozen=True)
class Review:
    rev: str  # the revision as given
    a: str
    b: str
    images: int
    level: float
    resamples: int
    rows: list[Row]
    studies: tuple[pd.DataFrame, pd.DataFrame] | None
    same_study: bool  # both sides hold the same seed study


def review(
    root: Path, rev: str | None = None, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> Review:
    root = Path(git(root, "rev-parse", "--show-toplevel").strip())
    rev = rev or default_rev(root)
    a, b = read_side(root, rev), read_side(root, None)
    y, pa, pb = pair(a, b)
    rows = paired_bootstrap(
        y,
        pa,
        pb,
        a.threshold,
        b.threshold,
        resamples=resamples,
        level=level,
        rng=np.random.default_rng(seed),
    )
    studies = seed_studies(root, rev)
    same = (
        studies is None
        and read_file(root, None, SEED_STUDY) is not None
        and (read_file(root, rev, SEED_STUDY) == read_file(root, None, SEED_STUDY))
    )
    return Review(rev, a.name, b.name, len(y), level, resamples, rows, studies, same)


# --- rendering ------------------------------------------------------------------------------


def _cells(r: Review) -> tuple[list[str], list[list[str]]]:
    head = ["metric", r.a, r.b, "change", f"{r.level:.0%} interval of the change", "verdict"]
    body = [
        [
            METRICS[x.metric][0],
            f"{x.a:.4f}",
            f"{x.b:.4f}",
            f"{x.change:+.4f}",
            f"[{x.low:+.4f}, {x.high:+.4f}]",
            x.verdict,
        ]
        for x in r.rows
    ]
    return head, body


def _study_lines(r: Review, md: bool) -> list[str]:
    if r.same_study:
        return ["Both sides hold the same seed study (reports/default.md)."]
    if r.studies is None:
        return []
    a, b = r.studies
    head = ["seed study (mean ± sd)", r.a, r.b]
    body = []
    for k, (name, _) in METRICS.items():
        if k in a.columns and k in b.columns:
            body.append(
                [
                    name,
                    f"{a[k].mean():.4f} ± {a[k].std():.4f} ({len(a)} runs)",
                    f"{b[k].mean():.4f} ± {b[k].std():.4f} ({len(b)} runs)",
                ]
            )
    return ["", *(_markdown(head, body) if md else _text(head, body))]


def _text(head: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*head).rstrip(), *(fmt.format(*row).rstrip() for row in body)]


def _markdown(head: list[str], body: list[list[str]]) -> list[str]:
    align = ["---", *(["---:"] * (len(head) - 2)), "---"]
    return [f"| {' | '.join(row)} |" for row in [head, align, *body]]


def render(r: Review, md: bool = False) -> str:
    """The review as plain text (fits 100 columns) or Markdown for a pull-request comment."""
    title = f"{r.b} against {r.rev} ({r.a}): {r.images} test images, the same images on both sides"
    note = (
        f"Interval: paired bootstrap over the test images ({r.resamples} resamples); a change "
        "whose interval holds 0 is within the test set's noise. Each side calls at its own "
        "threshold (metrics/eval.json)."
    )
    head, body = _cells(r)
    table = _markdown(head, body) if md else _text(head, body)
    note, title = (note, title) if md else (textwrap.fill(note, 100), textwrap.fill(title, 100))
    lines = [f"**{title}**" if md else title, "", *table, "", note, *_study_lines(r, md)]
    return "\n".join(lines) + "\n"
