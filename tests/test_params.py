from pathlib import Path

import pytest
import yaml

from pneumogan.params import Params, ParamsError, flatten, load_params
from tests.conftest import ROOT, tiny_params


def write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_repo_params_load():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.data.size in (28, 64, 128, 224)
    flat = flatten(params)
    assert flat["gan.lr"] == params.gan.lr and flat["seed"] == params.seed
    assert flatten({"seed": 1, "train": params.train})["train.epochs"] == params.train.epochs


def test_every_knob_has_a_comment():
    for line in (ROOT / "params.yaml").read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#") and not line.endswith(":"):
            assert "#" in line, f"knob without a comment: {line!r}"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p["gan"].update(lrr=0.1), "unknown key(s) ['lrr']"),
        (lambda p: p["train"].pop("epochs"), "missing key(s) ['epochs']"),
        (lambda p: p["train"].update(epochs="ten"), "params.train.epochs = 'ten': expected int"),
        (lambda p: p["train"].update(epochs=True), "expected int, got bool"),
        (lambda p: p.update(mixup=-0.1), "params.mixup = -0.1: out of range, allowed [0.0, inf]"),
        (lambda p: p["gan"].update(beta1=1.5), "out of range, allowed [0.0, 1.0]"),
        (lambda p: p["fuse"].update(target_ratio=0), "allowed (0.0, 1.0]"),
        (lambda p: p["fuse"].update(method="smote"), "must be one of ['gan', 'oversample'"),
        (lambda p: p["data"].update(size=32), "params.data.size = 32: must be one of [28, 64"),
        (lambda p: p["split"].update(train_per_class=0), "train_per_class = 0: out of range"),
        (lambda p: p.update(gan=[1, 2]), "params.gan: expected a mapping"),
    ],
)
def test_bad_params_name_file_key_value_and_range(tmp_path, edit, expected):
    params = tiny_params()
    edit(params)
    path = write(tmp_path, params)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_int_accepted_for_float_and_null_for_optional(tmp_path):
    params = tiny_params()
    params["mixup"] = 1
    params["split"]["train_per_class"] = None
    loaded = load_params(write(tmp_path, params))
    assert loaded.mixup == 1.0 and isinstance(loaded.mixup, float)
    assert loaded.split.train_per_class is None


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_params_are_frozen():
    params = load_params(ROOT / "params.yaml")
    with pytest.raises(AttributeError):
        params.train.epochs = 3
