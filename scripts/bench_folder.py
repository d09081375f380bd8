"""The real PneumoniaMNIST file as a folder of PNGs: does the folder source give the same split?

    PNEUMOGAN_DATA_DIR=../shared/data uv run python scripts/bench_folder.py [--nested 3]

Writes every image of the npz as a PNG under <tmp>/train|val|test/NORMAL|PNEUMONIA/, then runs
the download and split stages twice with this checkout's params.yaml, once with
`data.source: medmnist` and once with `data.source: folder` on that tree, and compares the
bytes of every `data/split` file (and the committed dvc.lock's hash of data/split, when the
params are the committed ones). Prints the time of each step; exits 1 if any file differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pneumogan.core.files import write_json  # noqa: E402
from pneumogan.core.params import load_params, stage_slice  # noqa: E402
from pneumogan.core.progress import setup_logging  # noqa: E402
from pneumogan.data import folder, medmnist  # noqa: E402
from pneumogan.data.contract import SPLITS, read_arrays  # noqa: E402
from stages import check_params, download, split  # noqa: E402, F401  (fills the registries)


def run_source(work: Path, params: dict, name: str) -> tuple[dict[str, bytes], float]:
    """download + split with `params`, in work/<name>; the split files' bytes and the seconds."""
    d = work / name
    d.mkdir()
    (d / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    checked = load_params(d / "params.yaml")
    for stage in ("download", "split"):
        write_json(d / f"{stage}.json", stage_slice(checked, stage))
    start = time.perf_counter()
    download.main(["--params", str(d / "download.json"), "--out", str(d / "raw")])
    split.main(
        [
            *("--params", str(d / "split.json"), "--raw", str(d / "raw")),
            *("--out", str(d / "split"), "--metrics", str(d / "split_metrics.json")),
        ]
    )
    seconds = time.perf_counter() - start
    return {s: (d / "split" / f"{s}.npz").read_bytes() for s in SPLITS}, seconds


def dir_md5(files: dict[str, bytes]) -> str:
    """DVC's hash of a directory of these files (its .dir listing, sorted by path)."""
    listing = [
        {"md5": hashlib.md5(data).hexdigest(), "relpath": f"{s}.npz"}
        for s, data in sorted(files.items(), key=lambda kv: f"{kv[0]}.npz")
    ]
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode()).hexdigest() + ".dir"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nested", type=int, default=0, help="subfolders per class folder")
    args = p.parse_args()
    setup_logging()
    params = load_params(ROOT / "params.yaml").model_dump(mode="json")
    d = params["data"]
    npz = medmnist.find_local_copy(d["image_size"], d["flag"], ROOT / d["path"])
    if npz is None:
        print("no local copy of the MedMNIST file: set PNEUMOGAN_DATA_DIR", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        n = folder.write_tree(read_arrays(npz), work / "tree", tuple(d["classes"]), args.nested)
        wrote = time.perf_counter() - start
        as_npz, t_npz = run_source(work, params, "npz")
        tree = {**params, "data": {**d, "source": "folder", "path": str(work / "tree")}}
        as_tree, t_tree = run_source(work, tree, "folder")
    print(f"\n{npz.name}: {n} images written as PNG in {wrote:.1f} s")
    print(f"download + split, medmnist source: {t_npz:.1f} s")
    print(f"download + split, folder source:   {t_tree:.1f} s ({n / t_tree:.0f} images/s)")
    same = True
    for s in SPLITS:
        equal = as_npz[s] == as_tree[s]
        same &= equal
        print(
            f"  data/split/{s}.npz: {'identical' if equal else 'DIFFERENT'} "
            f"(md5 {hashlib.md5(as_tree[s]).hexdigest()})"
        )
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]["split"]["outs"]
    (committed,) = [o["md5"] for o in lock if o["path"] == "data/split"]
    print(
        f"data/split hash: folder {dir_md5(as_tree)}, npz {dir_md5(as_npz)}, dvc.lock {committed}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
