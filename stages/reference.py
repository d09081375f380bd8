"""Stage reference: a classifier on real images only, whose features measure the GAN.

Used only when fuse.method is gan; otherwise it writes stand-ins and trains nothing.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan.core import stage
from pneumogan.core.params import StageParams, load_slice
from pneumogan.generate import standin

log = logging.getLogger("pneumogan.reference")


def run(args: argparse.Namespace, cfg: StageParams) -> None:
    from pneumogan.classify.checkpoint import save_classifier
    from pneumogan.classify.nets import ClassifierConfig
    from pneumogan.classify.train import TrainSettings, train_classifier
    from pneumogan.core import seeds, tracking
    from pneumogan.core.device import pick_device
    from pneumogan.core.files import write_json
    from pneumogan.core.history import History
    from pneumogan.data.contract import load_split

    rp = cfg.reference
    train = load_split(args.train)
    val = load_split(args.val, size=train[0].shape[1])
    net = ClassifierConfig(arch="resnet_small", size=train[0].shape[1], width=rp.width)
    # Plain training (no mixup, augmentation or weight decay, no early stop): the features
    # should describe the real images as they are.
    settings = TrainSettings(
        epochs=rp.epochs,
        batch_size=rp.batch_size,
        lr=rp.lr,
        warmup_fraction=rp.warmup_fraction,
        weight_decay=0.0,
        patience=rp.epochs,
        max_shift=0.0,
        max_rotate=0.0,
        mixup=0.0,
    )
    device = pick_device(rp.device, "reference.device")
    seeds.seed_everything(cfg.seed, "reference_init")
    with tracking.stage_run("reference", cfg.flat()) as run:
        clf, summary = train_classifier(
            train,
            val,
            net,
            settings,
            rng=seeds.numpy_rng(cfg.seed, "reference_train"),
            device=device,
            on_epoch=History(run, log),
        )
        save_classifier(args.model, clf)
        write_json(args.metrics, summary)
        run.log_metrics(summary)
        run.log_artifact(args.model)


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--train", type=Path, required=True, help="real training split")
    p.add_argument("--val", type=Path, required=True, help="real validation split")
    p.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--metrics", type=Path, required=True, help="summary (json)")
    args = p.parse_args(argv)
    cfg = load_slice(args.params, "reference")
    if not cfg.enabled:
        standin.skipped_checkpoint(args.model)
        standin.skipped_metrics(args.metrics)
        log.info("skipped: %s", standin.REASON)
        return
    run(args, cfg)


if __name__ == "__main__":
    stage.run(main)
