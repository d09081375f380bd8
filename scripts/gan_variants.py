"""Compare the generators on the real data and write the table to reports/gan_variants.md.

    uv run python scripts/gan_variants.py

Runs `dvc exp run --temp -n gan-<arm> -S fuse.method=gan -S gan.variant=... synthesize` for
each arm below, every `gan.variant` and DCGAN with DiffAugment (only reference, train_gan and
synthesize run; cached stages are reused), reads each experiment's metrics/gan.json, takes the
training time from its MLflow run, and writes the table to reports/gan_variants.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import mlflow

from pneumogan.core.files import write_text
from pneumogan.core.params import load_params
from pneumogan.core.registry import GENERATORS
from pneumogan.generate import nets  # noqa: F401  (registers the generators)
from pneumogan.study.store import stored

ROOT = Path(__file__).resolve().parents[1]
DIFFAUGMENT_ALL = "[color,translation,cutout]"
# arm -> (label, -S overrides); every variant as params.yaml sets it, and DCGAN + DiffAugment
ARMS = {e.name: (e.title, [f"gan.variant={e.name}", "gan.diffaugment=[]"]) for e in GENERATORS}
ARMS["dcgan_diffaugment"] = (
    "DCGAN + DiffAugment (color, translation, cutout)",
    ["gan.variant=dcgan", f"gan.diffaugment={DIFFAUGMENT_ALL}"],
)


def dvc(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=ROOT, text=True, capture_output=True
    )
    if out.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def experiment_metrics(name: str) -> dict:
    """metrics/gan.json of the newest stored experiment called `name` (dvc exp show)."""
    found = [e for e in stored(ROOT, name) if e.name == name]
    if not found:
        raise SystemExit(f"no stored experiment {name}")
    return max(found, key=lambda e: e.timestamp).metrics["metrics/gan.json"]


def train_seconds(name: str) -> float:
    """Training time of the newest train_gan run of the DVC experiment `name` (MLflow)."""
    mlflow.set_tracking_uri(f"sqlite:///{ROOT / 'mlflow.db'}")
    runs = mlflow.search_runs(
        experiment_names=["pneumogan"],
        output_format="list",
        order_by=["start_time DESC"],
        filter_string=f"tags.stage = 'train_gan' and tags.dvc_experiment = '{name}'",
    )
    timed = [r for r in runs if "train_seconds" in r.data.metrics]
    return timed[0].data.metrics["train_seconds"] if timed else float("nan")


def table(rows: dict[str, dict], seconds: dict[str, float]) -> str:
    head = (
        "| variant | FID ↓ | KID ↓ | precision ↑ | recall ↑ | density | coverage ↑ | "
        "likely copies ↓ | class agreement ↑ | kept epoch | GAN training |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    gan = load_params(ROOT / "params.yaml").gan
    default = "dcgan_diffaugment" if gan.diffaugment else gan.variant
    for variant, m in rows.items():
        s, mem = m["synthetic"], m["memorisation"]
        label = ARMS[variant][0] + (" (default)" if variant == default else "")
        lines.append(
            f"| {label} | {s['fid']:.2f} | {s['kid']:.3f} | {s['precision']:.3f} "
            f"| {s['recall']:.3f} | {s['density']:.3f} | {s['coverage']:.3f} "
            f"| {mem['share_synthetic']:.1%} | {m['class_agreement']['synthetic']:.1%} "
            f"| {m['kept_epoch']} | {seconds[variant]:.0f} s |"
        )
    ref = next(iter(rows.values()))
    r, o = ref["real_heldout"], ref["other_class"]
    for label, d, copies, agree in (
        (
            "*held-out real normal (floor)*",
            r,
            ref["memorisation"]["share_real_heldout"],
            ref["class_agreement"]["real_heldout"],
        ),
        ("*held-out real pneumonia (scale)*", o, None, None),
    ):
        lines.append(
            f"| {label} | {d['fid']:.2f} | {d['kid']:.3f} | {d['precision']:.3f} "
            f"| {d['recall']:.3f} | {d['density']:.3f} | {d['coverage']:.3f} "
            f"| {'' if copies is None else f'{copies:.1%}'} "
            f"| {'' if agree is None else f'{agree:.1%}'} | | |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=list(ARMS),
        default=[a for a in ARMS if a != "ddpm"],
        help="rows to run (default: all but ddpm, which takes about an hour on a 2-core CPU)",
    )
    args = parser.parse_args(argv)
    rows, seconds = {}, {}
    for arm in args.arms:
        overrides = ARMS[arm][1]
        name = f"gan-{arm}"
        subprocess.run(
            [sys.executable, "-m", "dvc", "exp", "remove", name], cwd=ROOT, capture_output=True
        )
        print(f"running {name} ...", flush=True)
        sets = [a for o in ["fuse.method=gan", *overrides] for a in ("-S", o)]
        dvc("exp", "run", "--temp", "-n", name, *sets, "synthesize")
        rows[arm] = experiment_metrics(name)
        seconds[arm] = train_seconds(name)
    text = table(rows, seconds)
    out = ROOT / "reports" / "gan_variants.md"
    write_text(
        out,
        "# Generators on the real data\n\nMade by `uv run python scripts/gan_variants.py`.\n\n"
        + text,
    )
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
