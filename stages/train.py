"""Stage train: the CNN classifier on the fused training set, chosen by validation AUC, with
its input gate fitted on the real training split and thresholded on validation."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from pneumogan.classify.checkpoint import Classifier, save_classifier
from pneumogan.classify.nets import ClassifierConfig
from pneumogan.classify.train import network, train_classifier, with_gate
from pneumogan.core import seeds, stage, tracking
from pneumogan.core.device import describe, pick_device
from pneumogan.core.files import write_json
from pneumogan.core.history import History
from pneumogan.core.params import StageParams, TrainParams, flatten, load_slice
from pneumogan.data.contract import load_split, load_weights

log = logging.getLogger("pneumogan.train")
CURVE_COLUMNS = ["train_loss", "val_loss", "val_auc"]


def run(args: argparse.Namespace, cfg: StageParams) -> None:
    train = load_split(args.train)
    val = load_split(args.val, size=train[0].shape[1])
    net = network(cfg.train, size=train[0].shape[1])
    device = pick_device(cfg.train.device, "train.device")
    log.info(what_trains(cfg.train, net, len(train[1]), len(val[1]), cfg.mixup, device))
    seeds.seed_everything(cfg.seed, "train_init")
    with tracking.stage_run("train", cfg) as run:
        history = History(run, log)
        clf, summary = train_classifier(
            train,
            val,
            net,
            cfg.train,
            mixup=cfg.mixup,
            rng=seeds.numpy_rng(cfg.seed, "train"),
            device=device,
            on_epoch=history,
            weights=load_weights(args.train),  # a class-weighted set (fuse.method: weighted)
        )
        # an ensemble's curves run on across its members, with the member in a column
        history.save(args.curves, CURVE_COLUMNS + (["member"] if net.members > 1 else []))
        real = load_split(args.real_train, size=train[0].shape[1])
        clf = with_gate(
            clf,
            real,
            val,
            cfg.train.gate_pass_rate,
            batch_size=cfg.train.batch_size,
            device=device,
        )
        record(args, run, clf, summary, device)
        run.log_metrics(flatten({"gate": gate_summary(clf.gate.info)}))
    for line in what_was_kept(net, summary):
        log.info(line)
    log.info(what_the_gate_passes(clf.gate.info))


def gate_summary(info: dict) -> dict:
    """The gate's figures, for MLflow (evaluate reports them in metrics/eval.json)."""
    keys = ("threshold", "val_pass_rate", "shrinkage", "features", "n_train", "n_val")
    return {k: info[k] for k in keys}


def what_the_gate_passes(info: dict) -> str:
    return (
        f"input gate: Mahalanobis distance of the {info['features']} features to the nearer "
        f"class mean of {info['n_train']} real training images; threshold {info['threshold']:.4g} "
        f"passes {info['val_pass_rate']:.1%} of {info['n_val']} validation images "
        f"(train.gate_pass_rate {info['pass_rate']:g})"
    )


def record(
    args: argparse.Namespace,
    run: tracking.StageRun,
    clf: Classifier,
    summary: dict,
    device: torch.device,
) -> None:
    """The checkpoint and summary, in files and in MLflow, with where the weights came from:
    other hardware or torch builds take another floating-point path (kept with the checkpoint
    and in MLflow, not in the metrics)."""
    runtime = {"device": describe(device), "torch": torch.__version__}
    clf.info.update(runtime)
    save_classifier(args.model, clf)
    write_json(args.metrics, summary)
    run.log_metrics(summary)
    for key, value in runtime.items():
        run.set_tag(key, value)
    run.log_artifact(args.model)


def what_trains(
    tp: TrainParams,
    net: ClassifierConfig,
    n_train: int,
    n_val: int,
    mixup: float,
    device: torch.device,
) -> str:
    members = f"{net.members} × " if net.members > 1 else ""
    weights = " (ImageNet weights, frozen)" if tp.freeze else " (ImageNet weights)"
    return (
        f"{members}{tp.arch}{weights if tp.pretrained else ''} on {n_train} images "
        f"({net.size} px, seen at {net.side}), validating on {n_val}, mixup α={mixup:g}, {device}"
    )


def what_was_kept(net: ClassifierConfig, summary: dict) -> list[str]:
    if net.members > 1:
        members = range(1, net.members + 1)
        epochs = ", ".join(str(summary[f"member{k}"]["best_epoch"]) for k in members)
        lines = [
            f"ensemble of {net.members}: kept epochs {epochs} "
            f"(val AUC {summary['best_val_auc']:.4f} together)"
        ]
    else:
        lines = [f"kept epoch {summary['best_epoch']} (val AUC {summary['best_val_auc']:.4f})"]
    if net.tta_shift:
        lines.append(
            f"with test-time augmentation (4 shifts of {net.tta_shift:g} px): "
            f"val AUC {summary['tta_val_auc']:.4f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--train", type=Path, required=True, help="fused training set")
    p.add_argument(
        "--real-train", type=Path, required=True, help="real training split (fits the gate)"
    )
    p.add_argument("--val", type=Path, required=True, help="real validation split")
    p.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--metrics", type=Path, required=True, help="summary (json)")
    p.add_argument("--curves", type=Path, required=True, help="per-epoch curves (csv plot)")
    args = p.parse_args(argv)
    run(args, load_slice(args.params, "train"))


if __name__ == "__main__":
    stage.run(main)
