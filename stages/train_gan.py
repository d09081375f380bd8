"""Stage train_gan: the generator `gan.variant` names, on the real training images.

An unconditional generator learns the minority class from its images alone; a conditional
one learns from every training image and its class, and is asked for the minority class.
Every gan.eval_every epochs the generator is scored by the Fréchet distance of its minority
images to the held-out (validation) minority images in the reference network's features;
the best one is kept. Used only when fuse.method is gan; otherwise it writes stand-ins and
trains nothing.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from pneumogan.classify.checkpoint import load_classifier
from pneumogan.core import seeds, stage, tracking
from pneumogan.core.choices import LABELS
from pneumogan.core.device import pick_device
from pneumogan.core.files import atomic_dir
from pneumogan.core.grids import save_grid
from pneumogan.core.history import History
from pneumogan.core.params import StageParams, load_slice
from pneumogan.core.registry import GENERATORS
from pneumogan.core.transforms import ImageTransform
from pneumogan.data.balance import minority_class
from pneumogan.data.contract import load_split
from pneumogan.generate import standin
from pneumogan.generate.checkpoint import save_gan
from pneumogan.generate.config import GanConfig
from pneumogan.generate.quality import HeldoutFID
from pneumogan.generate.train import train_gan

log = logging.getLogger("pneumogan.train_gan")
LOSS_COLUMNS = ["loss_d", "loss_g", "d_real", "d_fake"]
DDPM_LOSS_COLUMNS = ["loss"]  # the denoising loss (mean squared error of the predicted noise)
FID_COLUMNS = ["fid_heldout"]


def run(args: argparse.Namespace, cfg: StageParams) -> None:
    gp = cfg.gan
    images, labels = load_split(args.train)
    minority = minority_class(labels)
    tags = GENERATORS.get(gp.variant).tags
    conditional = "conditional" in tags
    real = images if conditional else images[labels == minority]
    size = images.shape[1]
    net = GanConfig(
        size=size,
        latent_dim=size * size if "diffusion" in tags else gp.latent_dim,  # its noise: an image
        width=gp.width,
        variant=gp.variant,
        steps=gp.sampling_steps,
        classes=len(LABELS) if conditional else 0,
        guidance=gp.guidance,
    )
    val_images, val_labels = load_split(args.val, size=net.size)
    reference = load_classifier(args.reference, producer="reference")
    device = pick_device(gp.device, "gan.device")
    transform = ImageTransform(size=net.size)
    # One noise stream per purpose: the checkpoint is chosen on noise that synthesis never uses.
    # As many selection images as the minority class has training images, whatever the
    # generator learns from: a conditional generator's checks then cost what a minority one's do.
    selection_z = torch.randn(
        int((labels == minority).sum()),
        net.latent_dim,
        generator=seeds.torch_generator(cfg.seed, "gan_selection_noise"),
    )
    fixed_z = torch.randn(
        64, net.latent_dim, generator=seeds.torch_generator(cfg.seed, "gan_fixed_noise")
    )
    score = HeldoutFID(
        reference,
        val_images[val_labels == minority],
        selection_z,
        transform,
        device,
        label=minority if conditional else None,
    )
    log.info(
        "%s%s on %d %s images (%d px), %d epochs on %s",
        gp.variant,
        f" with DiffAugment ({', '.join(gp.diffaugment)})" if gp.diffaugment else "",
        len(real),
        "training (both classes)" if conditional else LABELS[minority],
        net.size,
        gp.epochs,
        device,
    )
    seeds.seed_everything(cfg.seed, "gan_init")
    with tracking.stage_run("train_gan", cfg) as run, atomic_dir(args.samples) as samples:
        history = History(run, log)
        start = time.perf_counter()
        G, D, kept = train_gan(
            real,
            net,
            gp,
            labels=labels if conditional else None,
            generator=seeds.torch_generator(cfg.seed, "gan_train"),
            fixed_z=fixed_z,
            device=device,
            score=score,
            on_epoch=history,
            on_samples=lambda epoch, x: save_grid(
                samples / f"epoch_{epoch:04d}.png", transform.decode(x)
            ),
        )
        history.save(args.losses, DDPM_LOSS_COLUMNS if "diffusion" in tags else LOSS_COLUMNS)
        history.save(args.fid, FID_COLUMNS)
        save_gan(args.model, G.cpu(), D.cpu() if D is not None else None, net, kept, minority)
        # Wall-clock time goes to MLflow only: metrics files stay identical across runs.
        run.log_metrics({"kept_epoch": kept, "train_seconds": time.perf_counter() - start})
        run.set_tag("kept_epoch", kept)
        log.info("kept the generator of epoch %d (best held-out FID)", kept)
        run.log_artifact(args.model)
        run.log_artifact(samples, "samples")


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
    cfg = load_slice(args.params, "train_gan")
    if not cfg.enabled:
        standin.skipped_checkpoint(args.model)
        standin.skipped_table(args.losses, ["epoch", *LOSS_COLUMNS])
        standin.skipped_table(args.fid, ["epoch", *FID_COLUMNS])
        with atomic_dir(args.samples) as samples:
            standin.skipped_image(samples / "skipped.png")
        log.info("skipped: %s", standin.REASON)
        return
    run(args, cfg)


if __name__ == "__main__":
    stage.run(main)
