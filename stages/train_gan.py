"""Stage train_gan: a DCGAN on the real minority-class training images."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan import gan, stage, tracking
from pneumogan.fuse import minority_class
from pneumogan.io import LABELS, atomic_dir, load_split
from pneumogan.params import flatten, load_params
from pneumogan.plots import History, save_grid
from pneumogan.runtime import pick_device, seed_everything

log = logging.getLogger("pneumogan.train_gan")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--train", type=Path, required=True, help="real training split (npz)")
    p.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--losses", type=Path, required=True, help="per-epoch losses (csv plot)")
    p.add_argument("--samples", type=Path, required=True, help="directory of sample grids")
    args = p.parse_args(argv)
    params = load_params(args.params)
    gp = params.gan
    images, labels = load_split(args.train)
    minority = minority_class(labels)
    real = images[labels == minority]
    cfg = gan.GanConfig(size=images.shape[1], latent_dim=gp.latent_dim, width=gp.width)
    generator = seed_everything(params.seed)
    device = pick_device(gp.device)
    log.info(
        "DCGAN on %d %s images (%d px), %d epochs on %s",
        len(real),
        LABELS[minority],
        cfg.size,
        gp.epochs,
        device,
    )
    logged = flatten({"seed": params.seed, "gan": gp})
    with tracking.stage_run("train_gan", logged) as run, atomic_dir(args.samples) as samples:
        history = History(run, log)

        def on_samples(epoch: int, x) -> None:
            save_grid(samples / f"epoch_{epoch:04d}.png", x)

        G, D = gan.train_gan(
            real,
            cfg,
            epochs=gp.epochs,
            batch_size=gp.batch_size,
            lr=gp.lr,
            beta1=gp.beta1,
            sample_every=gp.sample_every,
            generator=generator,
            device=device,
            on_epoch=history,
            on_samples=on_samples,
        )
        history.save(
            args.losses, {"losses": ["loss_d", "loss_g"], "discriminator": ["d_real", "d_fake"]}
        )
        gan.save_checkpoint(args.model, G, D, cfg, gp.epochs, minority)
        run.log_artifact(args.model)
        run.log_artifact(samples, "samples")


if __name__ == "__main__":
    stage.run(main)
