"""Stage train: the CNN classifier on the fused training set, chosen by validation AUC."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pneumogan import stage, tracking
from pneumogan.classifier import ClassifierConfig, save_checkpoint, train_classifier
from pneumogan.io import load_split, write_json
from pneumogan.params import flatten, load_params
from pneumogan.plots import curves_figure, save_table
from pneumogan.runtime import pick_device, seed_everything

log = logging.getLogger("pneumogan.train")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--train", type=Path, required=True, help="fused training set")
    p.add_argument("--val", type=Path, required=True, help="real validation split")
    p.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--metrics", type=Path, required=True, help="summary (json)")
    p.add_argument("--curves", type=Path, required=True, help="per-epoch curves (csv plot)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    tp = params.train
    train = load_split(args.train)
    val = load_split(args.val, size=train[0].shape[1])
    cfg = ClassifierConfig(arch=tp.arch, size=train[0].shape[1], width=tp.width)
    generator = seed_everything(params.seed)
    device = pick_device(tp.device)
    log.info(
        "%s on %d images (%d px), validating on %d, mixup α=%g, %s",
        tp.arch,
        len(train[1]),
        cfg.size,
        len(val[1]),
        params.mixup,
        device,
    )
    rows: list[dict] = []
    logged = flatten({"seed": params.seed, "mixup": params.mixup, "train": tp})
    with tracking.stage_run("train", logged) as run:

        def on_epoch(epoch: int, stats: dict[str, float]) -> None:
            rows.append({"epoch": epoch, **stats})
            run.log_metrics(stats, step=epoch)
            log.info(
                "epoch %3d  train_loss %.4f  val_loss %.4f  val_auc %.4f  val_acc %.4f",
                epoch,
                stats["train_loss"],
                stats["val_loss"],
                stats["val_auc"],
                stats["val_accuracy"],
            )

        model, summary = train_classifier(
            train,
            val,
            cfg,
            mixup_alpha=params.mixup,
            epochs=tp.epochs,
            batch_size=tp.batch_size,
            lr=tp.lr,
            weight_decay=tp.weight_decay,
            patience=tp.patience,
            max_shift=tp.max_shift,
            max_rotate=tp.max_rotate,
            seed=params.seed,
            generator=generator,
            device=device,
            on_epoch=on_epoch,
        )
        table = pd.DataFrame(rows)
        save_table(args.curves, table)
        figure = args.curves.with_suffix(".png")
        curves_figure(
            figure,
            table,
            {"loss": ["train_loss", "val_loss"], "validation": ["val_auc", "val_accuracy"]},
        )
        save_checkpoint(args.model, model.cpu(), cfg, summary)
        write_json(args.metrics, summary)
        run.log_metrics(summary)
        for path in (args.model, args.curves, figure):
            run.log_artifact(path)
        log.info("kept epoch %d (val AUC %.4f)", summary["best_epoch"], summary["best_val_auc"])


if __name__ == "__main__":
    stage.run(main)
