"""End to end on a folder of X-rays: nested class folders, a DICOM file, one unreadable file."""

import json
import sys

import pytest
import yaml

from pneumogan.data import folder
from tests.conftest import make_medmnist, make_repo, ran, sh
from tests.unit.test_dicom import write_dicom


@pytest.mark.slow
def test_folder_source_end_to_end(tmp_path, tiny_raw_dir):
    tree = tmp_path / "xrays"
    raw = make_medmnist(seed=4)
    folder.write_tree(raw, tree, ("NORMAL", "PNEUMONIA"), nested=2)
    write_dicom(
        tree / "train/PNEUMONIA/part0/person900_virus_1.dcm", raw["train_images"][0], bits=8
    )
    (tree / "train/NORMAL/part1/IM-0999-0001.jpeg").write_bytes(b"\xff\xd8 truncated")
    repo, env = make_repo(tmp_path, tiny_raw_dir)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(source="folder", path=str(tree), max_unreadable=0.05)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = [sys.executable, "-m", "dvc"]

    first = sh([*dvc, "repro"], repo, env)
    assert ran(first)[:4] == ["check_params", "download", "split", "eda"]
    assert ran(first)[-1] == "export"
    report = (repo / "data/raw/unreadable.csv").read_text().splitlines()
    assert report[0] == "path,reason" and report[1].startswith(
        "train/NORMAL/part1/IM-0999-0001.jpeg,"
    )
    prov = json.loads((repo / "data/raw/provenance.json").read_text())
    assert prov["source"] == "folder" and prov["unreadable"] == 1
    assert prov["images"]["train"] == {"NORMAL": 12, "PNEUMONIA": 37}  # 36 PNGs + the DICOM
    assert str(tmp_path) not in (repo / "data/raw/provenance.json").read_text()
    eda = json.loads((repo / "metrics/eda.json").read_text())
    assert eda["train"]["total"] == 49 and eda["train"]["NORMAL"]["images"] == 12

    # The tree is a dependency: a file added to it reruns download; data/split is unchanged
    # (the new file cannot be read), so nothing after split and eda reruns.
    (tree / "test/NORMAL/part0/IM-0998-0001.png").write_bytes(b"garbage")
    assert ran(sh([*dvc, "repro"], repo, env)) == ["download", "split", "eda"]
    assert len((repo / "data/raw/unreadable.csv").read_text().splitlines()) == 3
    assert ran(sh([*dvc, "repro"], repo, env)) == []

    # dvc plots show renders the EDA figures beside the rest.
    plots = json.loads(sh([*dvc, "plots", "show", "--json"], repo, env))["data"]
    for name in ("intensity.png", "samples.png", "sizes.png"):
        assert plots[f"metrics/eda/{name}"][0]["type"] == "image", name
    bars = plots["metrics/eda/counts.csv"][0]
    assert bars["type"] == "vega"
    assert {"group": "train NORMAL", "images": "12", "rev": "workspace"} in bars["content"]["data"][
        "values"
    ]
    (lines,) = [v for k, v in plots.items() if k.startswith("Data: pixel intensities")]
    assert {"train_class0", "test_class1"} <= set(lines[0]["content"]["data"]["values"][0])
