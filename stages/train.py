"""Stage train: the CNN classifier on the fused training set, chosen by validation AUC."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from pneumogan import stage, tracking
from pneumogan.classifier import ClassifierConfig, save_checkpoint, train_classifier
from pneumogan.io import load_split, write_json
from pneumogan.params import flatten, load_params
from pneumogan.plots import History
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
    logged = flatten({"seed": params.seed, "mixup": params.mixup, "train": tp})
    with tracking.stage_run("train", logged, params.study) as run:
        history = History(run, log)
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
            on_epoch=history,
        )
        history.save(
            args.curves,
            {"loss": ["train_loss", "val_loss"], "validation": ["val_auc", "val_accuracy"]},
        )
        save_checkpoint(args.model, model.cpu(), cfg, summary)
        # Where the numbers came from: runs on other hardware or torch builds differ in the
        # last bits (CPU runs are bit-identical only to each other).
        runtime = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
            "torch": torch.__version__,
        }
        write_json(args.metrics, {**summary, **runtime})
        run.log_metrics(summary)
        for key, value in runtime.items():
            run.set_tag(key, value)
        run.log_artifact(args.model)
        log.info("kept epoch %d (val AUC %.4f)", summary["best_epoch"], summary["best_val_auc"])


if __name__ == "__main__":
    stage.run(main)
