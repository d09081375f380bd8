"""Folder sources: a tree of PNG, JPEG or DICOM files gives the same splits as the npz it holds."""

import csv
import shutil

import numpy as np
import pytest
from PIL import Image

from pneumogan.core.errors import DataError
from pneumogan.data import folder
from pneumogan.data.contract import SPLITS, save_split, write_arrays
from pneumogan.data.readers import fit
from pneumogan.data.split import split_parts, split_raw
from tests.conftest import make_medmnist
from tests.unit.test_cli import huge_png
from tests.unit.test_dicom import write_dicom

CLASSES = ("NORMAL", "PNEUMONIA")
KERMANY = r"^(person\d+|.*?IM-\d+)"


def read(root, **kw):
    opts = {"size": 28, "mode": "crop", "patient_pattern": KERMANY, "max_unreadable": 0.0}
    return folder.read_tree(root, CLASSES, **{**opts, **kw})


def split_bytes(raw_file, tmp_path, name, **carving) -> dict[str, bytes]:
    splits = split_raw(raw_file, 28, None, np.random.default_rng(0), **carving)
    out = {}
    for split, (x, y) in splits.items():
        save_split(tmp_path / f"{name}_{split}.npz", x, y)
        out[split] = (tmp_path / f"{name}_{split}.npz").read_bytes()
    return out


def test_png_tree_gives_the_npz_sources_split_byte_for_byte(tmp_path):
    raw = make_medmnist()
    np.savez(tmp_path / "pneumoniamnist.npz", **raw)
    n = folder.write_tree(raw, tmp_path / "tree", CLASSES, nested=3)
    assert n == sum(raw[f"{s}_labels"].size for s in SPLITS)
    assert (tmp_path / "tree/train/PNEUMONIA/part2").is_dir()  # nested class folders
    arrays, bad, summary = read(tmp_path / "tree")
    assert bad == [] and summary["layout"] == "splits" and summary["unreadable"] == 0
    assert summary["images"]["val"] == {"NORMAL": 6, "PNEUMONIA": 10}
    write_arrays(tmp_path / "folder.npz", **arrays)
    assert split_bytes(tmp_path / "pneumoniamnist.npz", tmp_path, "npz") == split_bytes(
        tmp_path / "folder.npz", tmp_path, "folder"
    )


def test_dicom_tree_gives_the_same_split(tmp_path):
    raw = make_medmnist(seed=3)
    np.savez(tmp_path / "r.npz", **raw)
    for split in SPLITS:
        for i, (img, y) in enumerate(
            zip(raw[f"{split}_images"], raw[f"{split}_labels"][:, 0], strict=True)
        ):
            d = tmp_path / "dcm" / split / CLASSES[y]
            d.mkdir(parents=True, exist_ok=True)
            name = f"IM-{i:04d}-0001.dcm" if i % 2 else f"IM-{i:04d}-0001"  # no suffix too
            write_dicom(d / name, img, bits=8)
    arrays, bad, _ = read(tmp_path / "dcm")
    assert bad == []
    write_arrays(tmp_path / "dcm.npz", **arrays)
    assert split_bytes(tmp_path / "r.npz", tmp_path, "a") == split_bytes(
        tmp_path / "dcm.npz", tmp_path, "b"
    )


def test_jpeg_and_large_images_are_resized(tmp_path):
    d = tmp_path / "t" / "train"
    for cls, value in zip(CLASSES, (60, 200), strict=True):
        (d / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (300, 200), value).save(d / cls / f"person{i}_x_{i}.jpeg")
    arrays, _, summary = read(tmp_path / "t")
    assert arrays["train_images"].shape == (6, 28, 28)
    assert arrays["train_shapes"].tolist() == [[200, 300]] * 6
    assert summary["layout"] == "splits" and set(summary["images"]) == {"train"}
    assert abs(int(arrays["train_images"][0].mean()) - 60) <= 2


def test_fit_crop_and_pad():
    wide = np.full((10, 20), 200, np.uint8)
    assert fit(wide, 10, "crop").tolist() == np.full((10, 10), 200).tolist()
    padded = fit(wide, 20, "pad")
    assert padded.shape == (20, 20)
    assert padded[:5].max() == 0 and padded[15:].max() == 0 and padded[5:15].min() == 200
    with pytest.raises(ValueError, match="fit mode"):
        fit(wide, 10, "stretch")


def test_unreadable_files_are_reported_and_past_the_threshold_fail(tmp_path):
    raw = make_medmnist()
    folder.write_tree(raw, tmp_path / "t", CLASSES)
    (tmp_path / "t/train/NORMAL/broken.png").write_bytes(b"not a png at all")
    (tmp_path / "t/train/NORMAL/notes.txt").write_text("ignored")
    (tmp_path / "t/train/NORMAL/.DS_Store").write_bytes(b"\0")
    with pytest.raises(DataError) as err:
        read(tmp_path / "t", max_unreadable=0.0)
    msg = str(err.value)
    assert "train/NORMAL/broken.png" in msg and "data.max_unreadable" in msg
    assert str(tmp_path) not in msg.split("\n", 1)[1]  # files named relative to the root
    arrays, bad, summary = read(tmp_path / "t", max_unreadable=0.05)
    assert [rel for rel, _ in bad] == ["train/NORMAL/broken.png"]
    assert summary["unreadable"] == 1 and summary["ignored_files"] == 2
    assert arrays["train_images"].shape[0] == raw["train_images"].shape[0]
    folder.write_report(tmp_path / "report.csv", bad)
    rows = list(csv.reader((tmp_path / "report.csv").open()))
    assert rows[0] == ["path", "reason"] and rows[1][0] == "train/NORMAL/broken.png"


def test_missing_class_folder_names_what_was_found(tmp_path):
    (tmp_path / "t/train/normal").mkdir(parents=True)
    (tmp_path / "t/train/PNEUMONIA").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        read(tmp_path / "t")
    assert str(err.value) == (
        f"{tmp_path / 't/train'}: no class folder NORMAL (found: ['PNEUMONIA', 'normal']). "
        "Name the class folders in data.classes (label 0, then label 1; now ['NORMAL', "
        "'PNEUMONIA'])"
    )
    with pytest.raises(DataError, match="no such folder"):
        read(tmp_path / "nowhere")


def test_a_misnamed_class_folder_in_a_split_never_points_data_path_at_another_split(tmp_path):
    """Before: train/Pneumonia (a typo) said 'Set data.path to .../test, which holds them'."""
    root = tmp_path / "t"
    for split in SPLITS:
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
    (root / "train/PNEUMONIA").rename(root / "train/Pneumonia")
    with pytest.raises(DataError) as err:
        read(root)
    assert str(err.value) == (
        f"{root / 'train'}: no class folder PNEUMONIA (found: ['NORMAL', 'Pneumonia']). "
        "Name the class folders in data.classes (label 0, then label 1; now ['NORMAL', "
        "'PNEUMONIA'])"
    )


LAYOUT = "NORMAL/ and PNEUMONIA/ folders (or train/, val/ and test/ folders, each holding those)"


def _loose_images(root):
    root.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "a.png")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda root: None,
            "data.path = '{root}': no such folder. Point data.path at the folder holding your "
            f"X-rays in {LAYOUT}: dvc exp run -S data.path=/path/to/chest_xray",
        ),
        (
            lambda root: root.write_text("a file"),
            "data.path = '{root}': a file, not a folder. Point data.path at the folder holding "
            f"your X-rays in {LAYOUT}: dvc exp run -S data.path=/path/to/chest_xray",
        ),
        (
            lambda root: (root.mkdir(), (root / ".DS_Store").write_bytes(b"")),
            "data.path = '{root}': the folder is empty. Put your X-rays there in "
            f"{LAYOUT}, or point data.path at the folder that holds them",
        ),
        (
            lambda root: folder.write_tree(make_medmnist(), root / "chest_xray", CLASSES),
            "{root}: no class folder NORMAL or PNEUMONIA (found: ['chest_xray']). Set data.path "
            "to '{root}/chest_xray', which holds them",
        ),
        (
            _loose_images,
            "{root}: no class folder NORMAL or PNEUMONIA (found: no folders). Sort the images "
            f"into {LAYOUT}",
        ),
    ],
    ids=["missing", "a file", "empty", "one level too high", "no class folders"],
)
def test_a_data_path_download_cannot_use_is_named_with_the_fix(tmp_path, make, expected):
    """Before: an empty root pointed at data.classes, a missing one said only 'no such folder'."""
    root = tmp_path / "xrays"
    make(root)
    with pytest.raises(DataError) as err:
        read(root)
    assert str(err.value) == expected.format(root=root)


@pytest.mark.parametrize(
    ("empty", "fix"),
    [
        ("train/PNEUMONIA", "Put the PNEUMONIA images there"),
        (
            "val/NORMAL",
            "Put the NORMAL images there, or remove {root}/val to have split carve "
            "val out of train",
        ),
    ],
)
def test_an_empty_class_folder_fails_naming_it(tmp_path, empty, fix):
    """Before, it passed download and failed in split, naming data/raw/folder.npz."""
    root = tmp_path / "t"
    folder.write_tree(make_medmnist(), root, CLASSES)
    shutil.rmtree(root / empty)
    (root / empty).mkdir()
    (root / empty / "Thumbs.db").write_bytes(b"")
    with pytest.raises(DataError) as err:
        read(root)
    cls = empty.split("/")[1]
    assert str(err.value) == (
        f"{root / empty}: class folder '{cls}' holds no images (PNG, JPEG or DICOM; 1 other "
        f"files ignored). {fix.format(root=root)}"
    )


def test_a_flat_tree_with_an_empty_class_folder_fails_naming_it(tmp_path):
    root = flat_tree(tmp_path, n_patients=2)
    shutil.rmtree(root / "NORMAL")
    (root / "NORMAL").mkdir()
    with pytest.raises(DataError) as err:
        read(root)
    assert str(err.value) == (
        f"{root / 'NORMAL'}: class folder 'NORMAL' holds no images (PNG, JPEG or DICOM). "
        "Put the NORMAL images there"
    )


def test_an_image_past_the_pixel_limit_is_listed_as_unreadable(tmp_path):
    """A 400-megapixel PNG once stopped download with Pillow's traceback."""
    folder.write_tree(make_medmnist(), tmp_path / "t", CLASSES)
    huge_png(tmp_path / "t/train/NORMAL/huge.png")
    _, bad, summary = read(tmp_path / "t", max_unreadable=0.05)
    assert bad == [
        (
            "train/NORMAL/huge.png",
            "20000 x 20000 pixels (400 megapixels), more than the 50 megapixels read at most; "
            "downscale it",
        )
    ]
    assert summary["unreadable"] == 1
    with pytest.raises(DataError, match=r"1 of 81 images .*\n  train/NORMAL/huge\.png: 20000 x"):
        read(tmp_path / "t")


def test_patient_ids_from_kermany_names():
    assert folder.patient_of("train/PNEUMONIA/person1_bacteria_1.jpeg", KERMANY) == "person1"
    assert folder.patient_of("x/person1000_virus_1681.jpeg", KERMANY) == "person1000"
    assert folder.patient_of("x/IM-0115-0001.jpeg", KERMANY) == "IM-0115"
    assert folder.patient_of("x/NORMAL2-IM-0552-0001.jpeg", KERMANY) == "NORMAL2-IM-0552"
    assert folder.patient_of("x/scan.png", KERMANY) == "x/scan.png"  # a patient of its own


def flat_tree(tmp_path, n_patients=40, per_patient=3):
    """Class folders at the root (no split folders); several images per patient."""
    rng = np.random.default_rng(1)
    for p in range(n_patients):
        cls = CLASSES[int(p % 3 != 0)]
        d = tmp_path / "flat" / cls
        d.mkdir(parents=True, exist_ok=True)
        for k in range(per_patient):
            img = rng.integers(0, 255, (28, 28), dtype=np.uint8)
            Image.fromarray(img).save(d / f"person{p}_virus_{k}.png")
    return tmp_path / "flat"


def test_missing_splits_are_carved_by_patient(tmp_path):
    arrays, _, summary = read(flat_tree(tmp_path))
    assert summary["layout"] == "flat" and set(summary["images"]) == {"train"}
    write_arrays(tmp_path / "f.npz", **arrays)
    parts, info = split_parts(
        tmp_path / "f.npz", 28, None, np.random.default_rng(0), carve_fraction=0.2, carve_seed=5
    )
    assert info.carved == ["test", "val"] and not info.by_image
    assert info.shared == {"train/val": 0, "train/test": 0, "val/test": 0}
    sizes = {s: len(y) for s, (_, y) in parts.items()}
    assert sum(sizes.values()) == 120 and sizes["test"] >= 12 and sizes["val"] >= 12
    for _, y in parts.values():
        assert set(np.unique(y)) == {0, 1}  # stratified: both classes in every split
    again, _ = split_parts(
        tmp_path / "f.npz", 28, None, np.random.default_rng(0), carve_fraction=0.2, carve_seed=5
    )
    other, _ = split_parts(
        tmp_path / "f.npz", 28, None, np.random.default_rng(0), carve_fraction=0.2, carve_seed=6
    )
    assert all(np.array_equal(parts[s][0], again[s][0]) for s in SPLITS)
    assert not np.array_equal(parts["val"][0], other["val"][0])


def test_a_tiny_val_goes_back_to_train_before_carving(tmp_path):
    raw = make_medmnist()  # val holds 16 images, like Kermany's; test 32
    more = make_medmnist(seed=9)
    for key in ("test_images", "test_labels"):
        raw[key] = np.concatenate([raw[key], more[key]])
    np.savez(tmp_path / "r.npz", **raw)
    kept, info = split_parts(tmp_path / "r.npz", 28, None, np.random.default_rng(0))
    assert info.carved == [] and len(kept["val"][1]) == 16
    carved, info = split_parts(
        tmp_path / "r.npz", 28, None, np.random.default_rng(0), min_images=17, carve_fraction=0.25
    )
    assert info.carved == ["val"] and info.by_image
    assert len(carved["train"][1]) + len(carved["val"][1]) == 48 + 16
    assert len(carved["test"][1]) == 32  # big enough: kept as it is


def test_carving_too_few_patients_fails_clearly(tmp_path):
    arrays, _, _ = read(flat_tree(tmp_path, n_patients=4, per_patient=1))
    write_arrays(tmp_path / "f.npz", **arrays)
    with pytest.raises(DataError, match="fewer than the 10 folds"):
        split_parts(tmp_path / "f.npz", 28, None, np.random.default_rng(0), carve_fraction=0.1)
