"""The classifier-recipe search: variants of `train` scored on the validation split only.

    uv run python scripts/recipe.py run              # train every missing (variant, seed)
    uv run python scripts/recipe.py run --only ema   # just these variants
    uv run python scripts/recipe.py report           # reports/recipe.md from the stored runs

Each variant is params.yaml's classifier recipe with the overrides `studies/recipe.yaml` gives
it, trained exactly as the train stage trains (same code, same random streams per seed) on the
real training split, balanced by `fuse.method`: none, oversample, weighted, or gan (which adds the
pipeline's own synthetic images, `dvc repro synthesize`, whatever the seed). It is scored on the
validation split: AUC, log loss, Brier score, and accuracy and balanced accuracy at 0.5, each
for the network as trained and with test-time augmentation (the image and four shifts of
1.5 px, the model `train.tta_shift: 1.5` builds; the runs themselves train without it). The
test split is never read, so choosing the recipe from this report leaves test untouched.

Every finished run is appended to `reports/recipe/runs.csv` at once; `run` queues only the
(variant, seed) pairs missing there, so an interrupted search resumes where it stopped.
Run the pipeline up to `split` first (`dvc repro split`; `synthesize` for gan variants).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pneumogan.classify.checkpoint import Classifier  # noqa: E402
from pneumogan.classify.nets import ShiftTTA  # noqa: E402
from pneumogan.classify.predictor import predict_proba  # noqa: E402
from pneumogan.classify.train import network, train_classifier  # noqa: E402
from pneumogan.core import seeds  # noqa: E402
from pneumogan.core.device import describe, pick_device  # noqa: E402
from pneumogan.core.params import Params, ParamsError, load_params, override  # noqa: E402
from pneumogan.data.contract import load_split  # noqa: E402
from pneumogan.data.fuse import fuse, image_weights  # noqa: E402

# imported for what it registers: load_params checks gan.variant against the generators
from pneumogan.generate import nets as _generators  # noqa: E402, F401
from pneumogan.study.stats import paired_summary  # noqa: E402

SPEC = ROOT / "studies" / "recipe.yaml"
OUT = ROOT / "reports" / "recipe"
RUNS = OUT / "runs.csv"
PREDS = OUT / "val_predictions"  # per run: P(pneumonia) of every validation image, plain and TTA
REPORT = ROOT / "reports" / "recipe.md"
SYNTHETIC = "data/synthetic/synthetic.npz"
KEYS = ["variant", "seed"]
METRICS = {  # column: (label, higher is better)
    "val_auc": ("AUC", True),
    "val_log_loss": ("log loss", False),
    "val_brier": ("Brier", False),
    "val_accuracy": ("accuracy", True),
    "val_balanced_accuracy": ("balanced acc.", True),
}
# params a variant may set: train.* knobs, mixup and the balancing method
TOP = {"mixup", "fuse.method"}


def load_spec(path: Path = SPEC) -> dict:
    spec = yaml.safe_load(path.read_text())
    if "baseline" not in spec["variants"]:
        raise SystemExit(f"{path}: variants need a `baseline` (the others are compared to it)")
    for name, other in (spec.get("against") or {}).items():
        if name not in spec["variants"] or other not in spec["variants"]:
            raise SystemExit(f"{path}: against: {name} -> {other} names an unknown variant")
    for name, sets in spec["variants"].items():
        for key in sets or {}:
            if key not in TOP and not key.startswith("train."):
                raise SystemExit(f"{path}: variant {name} sets {key}; only train.*, {sorted(TOP)}")
    return spec


def variant_params(name: str, variant: dict | None, params: Params) -> Params:
    """params.yaml with the variant's overrides, validated as params.yaml is."""
    return override(params, variant or {}, f"{SPEC}: variant {name}")


def run_one(name: str, variant: dict | None, seed: int, params: Params) -> dict:
    p = variant_params(name, variant, params)
    train = load_split(ROOT / "data/split/train.npz")
    val = load_split(ROOT / "data/split/val.npz", size=train[0].shape[1])
    synthetic = train[0][:0]
    if p.fuse.method == "gan":  # the pipeline's own synthetic images (params.yaml's seed and GAN)
        synthetic, _ = load_split(ROOT / SYNTHETIC, need_both_classes=False)
    ratio = p.fuse.target_ratio
    images, labels, _ = fuse(
        train,
        synthetic,
        method=p.fuse.method,
        target_ratio=ratio,
        rng=seeds.numpy_rng(seed, "fuse"),
    )
    weights = image_weights(labels, ratio) if p.fuse.method == "weighted" else None
    net = network(p.train, images.shape[1]).body()  # trained without TTA: scored both ways below
    device = pick_device(p.train.device, "train.device")
    seeds.seed_everything(seed, "train_init")
    start = time.perf_counter()
    clf, summary = train_classifier(
        (images, labels),
        val,
        net,
        p.train,
        mixup=p.mixup,
        rng=seeds.numpy_rng(seed, "train"),
        device=device,
        weights=weights,
    )
    seconds = time.perf_counter() - start
    prob = predict_proba(clf, val[0], batch_size=512)
    p_tta = shifted_proba(clf, val[0])
    PREDS.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(PREDS / f"{name}-s{seed}.npz", p=prob, p_tta=p_tta)
    return {
        "variant": name,
        "seed": seed,
        **scores(val[1], prob),
        **{f"tta_{k}": v for k, v in scores(val[1], p_tta).items()},
        "best_epoch": summary.get("best_epoch", np.nan),  # an ensemble has one per member
        "epochs_run": summary["epochs_run"],
        "seconds": round(seconds, 1),
        "device": describe(device),
        "torch": torch.__version__,
    }


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    calls = (p >= 0.5).astype(int)
    sens, spec = np.mean(calls[y == 1] == 1), np.mean(calls[y == 0] == 0)
    return {
        "val_auc": roc_auc_score(y, p),
        "val_log_loss": log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)),
        "val_brier": brier_score_loss(y, p),
        "val_accuracy": float(np.mean(calls == y)),
        "val_balanced_accuracy": float((sens + spec) / 2),
    }


def shifted_proba(clf, images: np.ndarray, px: float = 1.5) -> np.ndarray:
    """Test-time augmentation: P(pneumonia) averaged over the image and four shifts of `px`
    (the model `train.tta_shift` builds, around the run's network)."""
    tta = Classifier(ShiftTTA(clf.model, px).eval(), clf.config, clf.transform, {})
    return predict_proba(tta, images, batch_size=512)


def stored() -> pd.DataFrame:
    return pd.read_csv(RUNS) if RUNS.exists() else pd.DataFrame(columns=KEYS)


def cmd_run(args: argparse.Namespace) -> None:
    spec = load_spec()
    params = load_params(ROOT / "params.yaml")
    done = {(r.variant, int(r.seed)) for r in stored().itertuples()}
    names = args.only or list(spec["variants"])
    unknown = set(names) - set(spec["variants"])
    if unknown:
        raise SystemExit(
            f"unknown variant(s) {sorted(unknown)}; {SPEC} has {list(spec['variants'])}"
        )
    for name in names:  # a bad override fails now, not after hours of the other runs
        variant_params(name, spec["variants"][name], params)
    seeds = args.seeds or spec["seeds"]
    todo = [(n, s) for s in seeds for n in names if (n, s) not in done]
    print(f"{len(todo)} run(s) to go ({len(done)} stored)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    for i, (name, seed) in enumerate(todo, 1):
        row = run_one(name, spec["variants"][name], seed, params)
        pd.DataFrame([row]).to_csv(RUNS, mode="a", header=not RUNS.exists(), index=False)
        print(
            f"[{i}/{len(todo)}] {name} s{seed}: val AUC {row['val_auc']:.4f}, log loss "
            f"{row['val_log_loss']:.4f}, bal. acc {row['val_balanced_accuracy']:.3f}, "
            f"epoch {row['best_epoch']}/{row['epochs_run']}, {row['seconds']:.0f} s",
            flush=True,
        )


def _fmt(x: float, digits: int) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:+.{digits}f}"


def render(runs: pd.DataFrame, spec: dict, y: np.ndarray, preds: Path = PREDS) -> str:
    order = [v for v in spec["variants"] if v in set(runs["variant"])]
    lines = [
        "# Classifier recipe search (validation split only)",
        "",
        "Generated by `uv run python scripts/recipe.py report` from "
        f"[`recipe/runs.csv`](recipe/runs.csv) ({len(runs)} runs). Each variant is the "
        "classifier recipe of `params.yaml` with the overrides in `studies/recipe.yaml`, trained "
        "on the real training split and scored on the validation split (524 images, normal : "
        "pneumonia 1 : 2.9). The test split is not read. Accuracy and balanced accuracy are at "
        "threshold 0.5.",
        "",
        "## Mean ± sd over seeds",
        "",
        "| variant | overrides | n | "
        + " | ".join(m[0] for m in METRICS.values())
        + " | epochs kept/run | seconds |",
        "|---|---|---|" + "---|" * len(METRICS) + "---|---|",
    ]
    for name in order:
        r = runs[runs["variant"] == name]
        sets = ", ".join(f"`{k}={v}`" for k, v in (spec["variants"][name] or {}).items()) or "—"
        cells = [f"{r[m].mean():.4f} ± {r[m].std(ddof=1):.4f}" for m in METRICS]
        lines.append(
            f"| {name} | {sets} | {len(r)} | "
            + " | ".join(cells)
            + f" | {r['best_epoch'].mean():.1f}/{r['epochs_run'].mean():.1f}"
            f" | {r['seconds'].mean():.0f} |"
        )
    against = spec.get("against") or {}
    lines += paired_section(
        "Paired differences",
        "Variant − the variant it is compared with (`against` in the spec; `baseline` unless "
        "said), per seed: mean with a 95% t interval over seeds, and in how many seeds the "
        "variant did better. The interval is training variability across seeds on one "
        "validation set, not the sampling error of that set.",
        ["variant", "against", "n"],
    )
    for name in order:
        other = against.get(name, "baseline")
        if name == other or other not in order:
            continue
        base = runs[runs["variant"] == other].set_index("seed")
        r = runs[runs["variant"] == name].set_index("seed")
        common = r.index.intersection(base.index)
        cells = paired_cells(r.loc[common], base.loc[common])
        lines.append(f"| {name} | {other} | {len(common)} | " + " | ".join(cells) + " |")
    lines += paired_section(
        "Test-time augmentation, paired",
        "Each run with TTA (P(pneumonia) averaged over the image and four shifts of 1.5 px, "
        "`train.tta_shift: 1.5`) − the same run as trained, per seed: mean with a 95% t "
        "interval over seeds, and in how many seeds TTA did better.",
        ["variant", "n"],
    )
    for name in order:
        r = runs[runs["variant"] == name].set_index("seed")
        cells = paired_cells(r, r, prefix="tta_")
        lines.append(f"| {name} | {len(r)} | " + " | ".join(cells) + " |")
    d_auc = (runs["tta_val_auc"] - runs["val_auc"]).to_numpy(float)
    d_ll = (runs["tta_val_log_loss"] - runs["val_log_loss"]).to_numpy(float)
    lines += [
        "",
        f"Over all {len(runs)} runs, TTA raised validation AUC in {int((d_auc > 0).sum())} "
        f"(mean {_fmt(d_auc.mean(), 5)}) and lowered log loss in {int((d_ll < 0).sum())} "
        f"(mean {_fmt(d_ll.mean(), 4)}).",
    ]
    lines += [
        "",
        "## Test-time augmentation and seed ensembles",
        "",
        "TTA: P(pneumonia) averaged over the image and four shifts of 1.5 px (same runs, no "
        "retraining); mean ± sd over seeds. Ensemble: the mean P(pneumonia) of the variant's "
        "runs over all its seeds, scored once (one number, so no sd).",
        "",
        "| variant | "
        + " | ".join(f"TTA {m[0]}" for m in METRICS.values())
        + " | ensemble of | "
        + " | ".join(f"ensemble {m[0]}" for m in METRICS.values())
        + " |",
        "|---|" + "---|" * (2 * len(METRICS) + 1),
    ]
    for name in order:
        r = runs[runs["variant"] == name]
        tta = [f"{r['tta_' + m].mean():.4f} ± {r['tta_' + m].std(ddof=1):.4f}" for m in METRICS]
        probs = [np.load(preds / f"{name}-s{int(seed)}.npz")["p"] for seed in r["seed"]]
        ens = scores(y, np.mean(probs, axis=0))
        lines.append(
            f"| {name} | "
            + " | ".join(tta)
            + f" | {len(probs)} | "
            + " | ".join(f"{ens[m]:.4f}" for m in METRICS)
            + " |"
        )
    devices = ", ".join(f"{n} on {d}" for d, n in runs["device"].value_counts().items())
    lines += ["", f"Runs: {devices}; torch {', '.join(sorted(set(runs['torch'])))}.", ""]
    return "\n".join(lines)


def paired_section(title: str, text: str, keys: list[str]) -> list[str]:
    """The heading, explanation and table header of a table of paired differences."""
    cols = [*keys, *(m[0] for m in METRICS.values())]
    return [
        "",
        f"## {title}",
        "",
        text,
        "",
        "| " + " | ".join(cols) + " |",
        "|---" * len(cols) + "|",
    ]


def paired_cells(a: pd.DataFrame, b: pd.DataFrame, prefix: str = "") -> list[str]:
    """Per metric, `prefix`-metric of `a` − metric of `b` (rows paired by index): mean
    [95% t interval] (seeds where a did better / seeds)."""
    cells = []
    for metric, (_, higher) in METRICS.items():
        t = paired_summary((a[prefix + metric] - b[metric]).to_numpy(float), higher)
        cells.append(
            f"{_fmt(t['mean'], 4)} [{_fmt(t['low'], 4)}, {_fmt(t['high'], 4)}] "
            f"({t['a_better']}/{t['n']})"
        )
    return cells


def _val_labels() -> np.ndarray:
    return load_split(ROOT / "data/split/val.npz")[1]


def cmd_report(_: argparse.Namespace) -> None:
    runs = stored()
    if runs.empty:
        raise SystemExit(f"no runs in {RUNS}; run `scripts/recipe.py run` first")
    REPORT.write_text(render(runs, load_spec(), _val_labels()))
    print(f"wrote {REPORT.relative_to(ROOT)} ({len(runs)} runs)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the missing (variant, seed) runs")
    run.add_argument("--only", nargs="+", help="variants to run (default: all)")
    run.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the spec's)")
    run.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="write reports/recipe.md")
    rep.set_defaults(func=cmd_report)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ParamsError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
