"""Stage download: the raw data from `data.source`, a MedMNIST file or a folder of X-rays."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from pneumogan.core import stage, tracking
from pneumogan.core.files import atomic_dir, write_json
from pneumogan.core.params import StageParams, load_slice
from pneumogan.data import folder as tree
from pneumogan.data import medmnist as mnist
from pneumogan.data.contract import write_arrays

log = logging.getLogger("pneumogan.download")


def medmnist(cfg: StageParams, out: Path) -> dict:
    d = cfg.data
    mnist.check_flag(d.flag, d.image_size)
    name = mnist.filename(d.image_size, d.flag)
    prov = mnist.fetch(d.image_size, out / name, d.flag, Path(d.path))
    log.info("%s from %s (official MD5: %s)", name, prov.source, prov.official)
    return dataclasses.asdict(prov)


def folder(cfg: StageParams, out: Path) -> dict:
    d = cfg.data
    arrays, bad, summary = tree.read_tree(
        Path(d.path), d.classes, d.image_size, d.fit, d.patient_pattern, d.max_unreadable
    )
    write_arrays(out / tree.FILENAME, **arrays)
    tree.write_report(out / tree.REPORT, bad)
    for rel, why in bad:
        log.warning("skipped %s: %s", rel, why)
    log.info(
        "%s tree: %s; %d unreadable (listed in %s), %d other files ignored",
        summary["layout"],
        "; ".join(f"{s} {c}" for s, c in summary["images"].items()),
        summary["unreadable"],
        tree.REPORT,
        summary["ignored_files"],
    )
    return {"source": "folder", "classes": list(d.classes), "fit": d.fit, **summary}


def main(argv: Sequence[str] | None = None) -> None:
    p = stage.parser(__doc__)
    p.add_argument("--out", type=Path, required=True, help="directory for the raw npz")
    args = p.parse_args(argv)
    cfg = load_slice(args.params, "download")
    read = {"medmnist": medmnist, "folder": folder}[cfg.data.source]
    # The old copy stays until the new one is whole and valid (the output is `persist`).
    with tracking.stage_run("download", cfg) as run, atomic_dir(args.out) as tmp:
        prov = read(cfg, tmp)
        write_json(tmp / "provenance.json", prov)
        counts = prov.get("n_samples") or {
            s: sum(c.values()) for s, c in prov.get("images", {}).items()
        }
        run.log_metrics({f"n_{k}": v for k, v in counts.items()})
        run.log_artifact(tmp / "provenance.json")


if __name__ == "__main__":
    stage.run(main)
