"""Stage train_gan: a DCGAN on the real minority-class training images.

Every gan.eval_every epochs the generator is scored by its Fréchet distance to the held-out
(validation) minority images in the reference network's features; the best one is kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from pneumogan import gan, stage, tracking
from pneumogan.classifier import load_classifier
from pneumogan.fuse import minority_class
from pneumogan.io import LABELS, atomic_dir, load_split
from pneumogan.params import flatten, load_params
from pneumogan.plots import History, save_grid
from pneumogan.quality import embed, fid
from pneumogan.runtime import pick_device, seed_everything

log = logging.getLogger("pneumogan.train_gan")


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--train", type=Path, required=True, help="real training split (npz)")
    p.add_argument("--val", type=Path, required=True, help="real validation split (held out)")
    p.add_argument("--reference", type=Path, required=True, help="real-only classifier")
    p.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--losses", type=Path, required=True, help="per-epoch losses (csv plot)")
    p.add_argument("--fid", type=Path, required=True, help="held-out FID per check (csv plot)")
    p.add_argument("--samples", type=Path, required=True, help="directory of sample grids")
    args = p.parse_args(argv)
    params = load_params(args.params)
    gp = params.gan
    images, labels = load_split(args.train)
    minority = minority_class(labels)
    real = images[labels == minority]
    cfg = gan.GanConfig(
        size=images.shape[1], latent_dim=gp.latent_dim, width=gp.width, variant=gp.variant
    )
    val_images, val_labels = load_split(args.val, size=cfg.size)
    reference = load_classifier(args.reference)
    heldout = embed(reference, val_images[val_labels == minority])
    generator = seed_everything(params.seed)
    # Fixed noise for the checks, as many draws as real training images, from its own stream.
    eval_z = torch.randn(
        len(real), cfg.latent_dim, generator=torch.Generator().manual_seed(params.seed)
    )
    device = pick_device(gp.device)
    log.info(
        "%s on %d %s images (%d px), %d epochs on %s",
        gp.variant,
        len(real),
        LABELS[minority],
        cfg.size,
        gp.epochs,
        device,
    )
    logged = flatten({"seed": params.seed, "gan": gp})
    with (
        tracking.stage_run("train_gan", logged, params.study) as run,
        atomic_dir(args.samples) as samples,
    ):
        history = History(run, log)

        def score(G: gan.Generator) -> float:
            fake = gan.to_uint8(G(eval_z.to(device)))
            return fid(heldout, embed(reference, fake))

        def on_samples(epoch: int, x) -> None:
            save_grid(samples / f"epoch_{epoch:04d}.png", x)

        start = time.perf_counter()
        G, D, kept = gan.train_gan(
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
            score=score,
            eval_every=gp.eval_every,
        )
        history.save(
            args.losses, {"losses": ["loss_d", "loss_g"], "discriminator": ["d_real", "d_fake"]}
        )
        history.save(args.fid, {"held-out FID (lower is better)": ["fid_heldout"]})
        gan.save_checkpoint(args.model, G.cpu(), D.cpu(), cfg, kept, minority)
        # Wall-clock time goes to MLflow only: metrics files stay identical across runs.
        run.log_metrics({"kept_epoch": kept, "train_seconds": time.perf_counter() - start})
        run.set_tag("kept_epoch", kept)
        log.info("kept the generator of epoch %d (best held-out FID)", kept)
        run.log_artifact(args.model)
        run.log_artifact(samples, "samples")


if __name__ == "__main__":
    stage.run(main)
