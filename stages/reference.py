"""Stage reference: a classifier on real images only, whose features measure the GAN."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan import stage, tracking
from pneumogan.classifier import ClassifierConfig, save_checkpoint, train_classifier
from pneumogan.io import load_split, write_json
from pneumogan.params import flatten, load_params
from pneumogan.plots import History
from pneumogan.runtime import pick_device, seed_everything

log = logging.getLogger("pneumogan.reference")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--train", type=Path, required=True, help="real training split")
    p.add_argument("--val", type=Path, required=True, help="real validation split")
    p.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--metrics", type=Path, required=True, help="summary (json)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    rp = params.reference
    train = load_split(args.train)
    val = load_split(args.val, size=train[0].shape[1])
    cfg = ClassifierConfig(arch="resnet_small", size=train[0].shape[1], width=rp.width)
    generator = seed_everything(params.seed)
    logged = flatten({"seed": params.seed, "reference": rp})
    with tracking.stage_run("reference", logged, params.study) as run:
        # Plain training (no mixup, augmentation or weight decay): the features should
        # describe the real images as they are.
        model, summary = train_classifier(
            train,
            val,
            cfg,
            mixup_alpha=0.0,
            epochs=rp.epochs,
            batch_size=rp.batch_size,
            lr=rp.lr,
            weight_decay=0.0,
            patience=rp.epochs,
            max_shift=0.0,
            max_rotate=0.0,
            seed=params.seed,
            generator=generator,
            device=pick_device(rp.device),
            on_epoch=History(run, log),
        )
        save_checkpoint(args.model, model.cpu(), cfg, summary)
        write_json(args.metrics, summary)
        run.log_metrics(summary)
        run.log_artifact(args.model)


if __name__ == "__main__":
    stage.run(main)
