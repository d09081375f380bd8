"""The model card: what the committed classifier is, what it was trained and tested on, how
well it does (with intervals) and where it fails, rendered from the metrics files alone.

The card's text is the Jinja2 template `model_card.md.j2` beside this module; the phrases that
depend on the run (training, balancing, errors) are made here and passed to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pneumogan.core.registry import GENERATORS

TEMPLATE = "model_card.md.j2"
ROWS = (  # the table's metrics with a value at both thresholds: (label, key in eval.json)
    ("accuracy", "accuracy"),
    ("sensitivity (pneumonia recall)", "sensitivity"),
    ("specificity", "specificity"),
    ("precision", "precision"),
    ("balanced accuracy", "balanced_accuracy"),
)


def _training(train: dict, tp: dict) -> str:
    """How long it trained and what it kept, for one network or an ensemble."""
    if tp.get("ensemble", 1) == 1:
        return (
            f"Trained {train['epochs_run']} epochs (kept epoch {train['best_epoch']}, validation "
            f"AUC {train['best_val_auc']:.4f})"
        )
    kept = ", ".join(str(train[f"member{k}"]["best_epoch"]) for k in range(1, tp["ensemble"] + 1))
    return (
        f"An ensemble of {tp['ensemble']} networks trained one after another from the seed "
        f"(mean P(pneumonia)); kept epochs {kept}, validation AUC {train['best_val_auc']:.4f} "
        "together. Each was trained"
    )


def _extra_augmentation(tp: dict) -> str:
    parts = []
    if tp.get("max_zoom"):
        parts.append(f"zoom up to ±{tp['max_zoom']:g}")
    if tp.get("contrast"):
        parts.append(f"contrast and brightness up to ±{tp['contrast']:g}")
    if tp.get("ema"):
        parts.append(f"weights averaged (EMA, decay {tp['ema']:g})")
    return "".join(f", {p}" for p in parts)


def _ratio(counts: dict[str, int]) -> str:
    return f"1 : {counts['pneumonia'] / counts['normal']:.1f}"


def _ci(scores: dict, key: str) -> str:
    ci = scores["ci"].get(key)
    return f"{ci['low']:.3f} – {ci['high']:.3f}" if ci else ""


def _kind(scores: dict) -> str:
    if scores["fp"] > scores["fn"]:
        return "most of its errors are false alarms"
    if scores["fn"] > scores["fp"]:
        return "most of its errors are missed pneumonia"
    return "its errors are as often false alarms as misses"


def _environment() -> Environment:
    """The template's environment: a missing value is an error, never an empty string."""
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = format  # {{ x | fmt(".3f") }} is f"{x:.3f}"
    env.filters["ratio"] = _ratio
    return env


def render(
    *,
    params: dict[str, Any],
    split: dict,
    fuse: dict,
    train: dict,
    scores: dict,
    export: dict,
    licence: str,
) -> str:
    """MODEL_CARD.md from params.yaml and metrics/{split,fuse,train,eval,export}.json."""
    tp = params["train"]
    method = params["fuse"]["method"]
    added = {
        "gan": f"{fuse['synthetic']} synthetic normal images from a "
        f"{GENERATORS.get(params['gan']['variant']).title} trained on the real ones",
        "oversample": f"{fuse['oversampled']} repeated real normal images",
        "none": "no added images",
        "weighted": "no added images; in the loss each normal image weighs "
        f"{fuse.get('minority_weight', float('nan')):.3g} and each pneumonia image "
        f"{fuse.get('majority_weight', float('nan')):.3g}",
    }[method]
    name = params["evaluate"]["register_as"]
    gate = params["evaluate"].get("register_min_val_auc")
    if name:
        registered = (
            f"an MLflow model, registered as `{name}` when its validation AUC reaches {gate:g}"
        )
    else:
        registered = "an MLflow model (not registered)"
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            params=params,
            tp=tp,
            split=split,
            fuse=fuse,
            train=train,
            scores=scores,
            chosen=scores["at_val_threshold"],
            export=export,
            licence=licence,
            method=method,
            added=added,
            training=_training(train, tp),
            extra_augmentation=_extra_augmentation(tp),
            registered=registered,
            level=params["evaluate"]["ci_level"],
            rows=ROWS,
            ci=lambda key: _ci(scores, key),
            kind=_kind(scores),
        )
    )
