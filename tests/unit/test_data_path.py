"""data.path checked before DVC hashes it, and a folder source's empty folders refused by name.

DVC hashes download's dependency `${data.path}` when it reaches that stage, before the command
runs: a missing path stops `dvc repro` with a bare "[Errno 2] No such file or directory". The
first stage, check_params, refuses it with the fix instead.
"""

import json
import re
import shutil

import pytest
import yaml

from pneumogan.core.errors import DataError, ParamsError
from pneumogan.core.params import stage_slice, validate
from pneumogan.data import folder
from stages import check_params, download
from tests.conftest import make_medmnist, tiny_params

CLASSES = ("NORMAL", "PNEUMONIA")


def params_file(tmp_path, **data):
    params = tiny_params()
    params["data"].update(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize(
    ("source", "fix"),
    [
        ("folder", "Point data.path at the root of your tree of X-rays"),
        ("medmnist", "or point data.path at the folder holding pneumoniamnist.npz"),
    ],
)
def test_check_params_refuses_a_missing_data_path_with_the_fix(tmp_path, source, fix):
    missing = tmp_path / "chest_xray"
    path = params_file(tmp_path, source=source, path=str(missing))
    with pytest.raises(ParamsError) as err:
        check_params.main(["--params", str(path), "--out", str(tmp_path / "p")])
    msg = str(err.value)
    assert msg.startswith(f"{path}: data.path = '{missing}': no such folder") and fix in msg
    assert "\n" not in msg and not (tmp_path / "p").exists()  # no slice written
    if source == "medmnist":
        assert f"mkdir -p {missing}" in msg


def test_check_params_refuses_a_file_as_data_path(tmp_path):
    (tmp_path / "pneumoniamnist.npz").write_bytes(b"")
    path = params_file(tmp_path, path=str(tmp_path / "pneumoniamnist.npz"))
    expected = f"a file, not a folder. Set data.path to the folder holding it, '{tmp_path}'"
    with pytest.raises(ParamsError, match=re.escape(expected)):
        check_params.main(["--params", str(path), "--out", str(tmp_path / "p")])
    (tmp_path / "pneumoniamnist.npz").unlink()
    path = params_file(tmp_path, path=str(tmp_path))  # the folder holding it: accepted
    check_params.main(["--params", str(path), "--out", str(tmp_path / "p")])
    assert (tmp_path / "p/download.json").is_file()


def tree(tmp_path):
    root = tmp_path / "chest_xray"
    folder.write_tree(make_medmnist(), root, CLASSES)
    return root


def test_download_refuses_an_empty_class_folder_naming_it_and_writes_nothing(tmp_path):
    root = tree(tmp_path)
    shutil.rmtree(root / "train/PNEUMONIA")
    (root / "train/PNEUMONIA").mkdir()
    (root / "train/PNEUMONIA/notes.txt").write_text("not an image")
    params = validate(
        yaml.safe_load(params_file(tmp_path, source="folder", path=str(root)).read_text()), "p"
    )
    slice_file = tmp_path / "download.json"
    slice_file.write_text(json.dumps(stage_slice(params, "download")))
    with pytest.raises(DataError) as err:
        download.main(["--params", str(slice_file), "--out", str(tmp_path / "raw")])
    assert str(err.value) == (
        f"{root / 'train/PNEUMONIA'}: class folder 'PNEUMONIA' holds no images (PNG, JPEG or "
        "DICOM; 1 other files ignored). Put the PNEUMONIA images there"
    )
    assert not (tmp_path / "raw").exists()
