"""Stage train: the CNN classifier on the fused training set, chosen by validation AUC."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan.core import stage
from pneumogan.core.params import StageParams, load_slice

log = logging.getLogger("pneumogan.train")
CURVE_COLUMNS = ["train_loss", "val_loss", "val_auc"]


def run(args: argparse.Namespace, cfg: StageParams) -> None:
    import torch

    from pneumogan.classify.checkpoint import save_classifier
    from pneumogan.classify.nets import ClassifierConfig
    from pneumogan.classify.train import TrainSettings, train_classifier
    from pneumogan.core import seeds, tracking
    from pneumogan.core.device import describe, pick_device
    from pneumogan.core.files import write_json
    from pneumogan.core.history import History
    from pneumogan.data.contract import load_split, load_weights

    tp = cfg.train
    train = load_split(args.train)
    weights = load_weights(args.train)  # a class-weighted set (fuse.method: weighted)
    val = load_split(args.val, size=train[0].shape[1])
    net = ClassifierConfig.for_arch(
        tp.arch,
        train[0].shape[1],
        tp.width,
        tp.input_size,
        tp.pretrained,
        tp.freeze,
        tp.ensemble,
        tp.tta_shift,
    )
    settings = TrainSettings(
        epochs=tp.epochs,
        batch_size=tp.batch_size,
        lr=tp.lr,
        warmup_fraction=tp.warmup_fraction,
        weight_decay=tp.weight_decay,
        patience=tp.patience,
        max_shift=tp.max_shift,
        max_rotate=tp.max_rotate,
        mixup=cfg.mixup,
        max_zoom=tp.max_zoom,
        contrast=tp.contrast,
        ema=tp.ema,
    )
    device = pick_device(tp.device, "train.device")
    log.info(
        "%s%s%s on %d images (%d px, seen at %d), validating on %d, mixup α=%g, %s",
        f"{tp.ensemble} × " if tp.ensemble > 1 else "",
        tp.arch,
        " (ImageNet weights, frozen)"
        if tp.freeze
        else " (ImageNet weights)"
        if tp.pretrained
        else "",
        len(train[1]),
        net.size,
        net.side,
        len(val[1]),
        cfg.mixup,
        device,
    )
    seeds.seed_everything(cfg.seed, "train_init")
    with tracking.stage_run("train", cfg.flat()) as run:
        history = History(run, log)
        clf, summary = train_classifier(
            train,
            val,
            net,
            settings,
            rng=seeds.numpy_rng(cfg.seed, "train"),
            device=device,
            on_epoch=history,
            weights=weights,
        )
        # an ensemble's curves run on across its members, with the member in a column
        history.save(args.curves, CURVE_COLUMNS + (["member"] if tp.ensemble > 1 else []))
        # Where the weights came from: other hardware or torch builds take another
        # floating-point path. Kept with the checkpoint and in MLflow, not in the metrics.
        runtime = {"device": describe(device), "torch": torch.__version__}
        clf.info.update(runtime)
        save_classifier(args.model, clf)
        write_json(args.metrics, summary)
        run.log_metrics(summary)
        for key, value in runtime.items():
            run.set_tag(key, value)
        run.log_artifact(args.model)
        if tp.ensemble > 1:
            log.info(
                "ensemble of %d: kept epochs %s (val AUC %.4f together)",
                tp.ensemble,
                ", ".join(
                    str(summary[f"member{k}"]["best_epoch"]) for k in range(1, tp.ensemble + 1)
                ),
                summary["best_val_auc"],
            )
        else:
            log.info("kept epoch %d (val AUC %.4f)", summary["best_epoch"], summary["best_val_auc"])
        if tp.tta_shift:
            log.info(
                "with test-time augmentation (4 shifts of %g px): val AUC %.4f",
                tp.tta_shift,
                summary["tta_val_auc"],
            )


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--train", type=Path, required=True, help="fused training set")
    p.add_argument("--val", type=Path, required=True, help="real validation split")
    p.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--metrics", type=Path, required=True, help="summary (json)")
    p.add_argument("--curves", type=Path, required=True, help="per-epoch curves (csv plot)")
    args = p.parse_args(argv)
    run(args, load_slice(args.params, "train"))


if __name__ == "__main__":
    stage.run(main)
