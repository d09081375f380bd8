"""Stage reference: a classifier on real images only, whose features measure the GAN.

Used only when fuse.method is gan; otherwise it writes stand-ins and trains nothing.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan.classify.checkpoint import save_classifier
from pneumogan.classify.nets import ClassifierConfig
from pneumogan.classify.train import train_classifier
from pneumogan.core import seeds, stage, tracking
from pneumogan.core.device import pick_device
from pneumogan.core.files import write_json
from pneumogan.core.history import History
from pneumogan.core.params import StageParams, load_slice
from pneumogan.data.contract import load_split
from pneumogan.generate import standin

log = logging.getLogger("pneumogan.reference")


def run(args: argparse.Namespace, cfg: StageParams) -> None:
    train = load_split(args.train)
    val = load_split(args.val, size=train[0].shape[1])
    net = ClassifierConfig(arch="resnet_small", size=train[0].shape[1], width=cfg.reference.width)
    device = pick_device(cfg.reference.device, "reference.device")
    seeds.seed_everything(cfg.seed, "reference_init")
    with tracking.stage_run("reference", cfg) as run:
        # Plain training (the reference section has no mixup, augmentation, weight decay or
        # early stop): the features should describe the real images as they are.
        clf, summary = train_classifier(
            train,
            val,
            net,
            cfg.reference,
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
