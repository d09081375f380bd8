"""The npz data contract: byte-reproducible writes, every read validated."""

import numpy as np
import pytest

from pneumogan.core.errors import DataError
from pneumogan.data import medmnist
from pneumogan.data.contract import (
    SPLITS,
    load_split,
    read_arrays,
    save_split,
    validate_medmnist,
    validate_split,
    write_arrays,
)
from tests.conftest import make_medmnist


def arrays(n=6, size=28):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), np.array([0, 1] * (n // 2))


def test_npz_bytes_are_reproducible(tmp_path):
    images, labels = arrays()
    save_split(tmp_path / "a.npz", images, labels)
    save_split(tmp_path / "b.npz", images, labels)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    got_images, got_labels = load_split(tmp_path / "a.npz")
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_write_arrays_round_trips_any_keys(tmp_path):
    write_arrays(tmp_path / "x.npz", b=np.arange(3), a=np.eye(2))
    got = read_arrays(tmp_path / "x.npz")
    assert sorted(got) == ["a", "b"]
    np.testing.assert_array_equal(got["a"], np.eye(2))
    np.testing.assert_array_equal(got["b"], np.arange(3))


IMAGES, LABELS = arrays()
# Every malformed kind: (id, images, labels, the problem named, the fix the message ends with).
# The same arrays are tried as a split file (load_split) and as the train split of a user's
# MedMNIST copy (validate_medmnist, what download runs on data.path).
MALFORMED = [
    (
        "float images in 0..1",
        IMAGES / 255.0,
        LABELS,
        "images have dtype float64, expected uint8",
        "they hold 0..1: save np.round(images * 255).astype(np.uint8)",
    ),
    (
        "float images outside 0..255",
        IMAGES.astype(np.float32) - 128,
        LABELS,
        "images have dtype float32, expected uint8",
        "scale them to 0 (black) .. 255 (white) and save them with .astype(np.uint8)",
    ),
    (
        "16-bit images",
        IMAGES.astype(np.uint16) * 257,
        LABELS,
        "images have dtype uint16, expected uint8",
        "save (images // 257).astype(np.uint8), or scale from the range they use",
    ),
    (
        "int64 images in 0..255",
        IMAGES.astype(np.int64),
        LABELS,
        "images have dtype int64, expected uint8",
        "they hold 0..255: save images.astype(np.uint8)",
    ),
    (
        "images not square",
        IMAGES[:, :, :20],
        LABELS,
        "images have shape (6, 28, 20), expected N x H x W, H == W",
        "make every image square (crop or pad it) and of one size before stacking",
    ),
    (
        "colour images",
        np.repeat(IMAGES[..., None], 3, axis=-1),
        LABELS,
        "images have shape (6, 28, 28, 3)",
        "keep one grayscale channel (images[..., 0], or a luma conversion for colour)",
    ),
    (
        "channel-first images",
        IMAGES[:, None],
        LABELS,
        "images have shape (6, 1, 28, 28)",
        "keep one grayscale channel (images[:, 0], or a luma conversion for colour)",
    ),
    (
        "a wrong image size",
        arrays(size=64)[0],
        LABELS,
        "images are 64 px, expected 28 px (data.image_size)",
        "resize them to 28 x 28 px, or set data.image_size to 64",
    ),
    (
        "float labels",
        IMAGES,
        LABELS.astype(float),
        "labels have dtype float64, expected integers",
        "they hold only 0 and 1: save labels.astype(np.int64)",
    ),
    (
        "class names as labels",
        IMAGES,
        np.array(["normal", "pneumonia"] * 3),
        "labels have dtype <U9, expected integers",
        "save 0 for normal and 1 for pneumonia, as integers (np.int64)",
    ),
    (
        "one label short",
        IMAGES,
        LABELS[:5],
        "(5,) labels for 6 images",
        "give each image one label, in the images' order (6 labels, not 5)",
    ),
    (
        "label 2",
        IMAGES,
        np.array([0, 1, 2, 0, 1, 0]),
        "label values [2] outside {0, 1}",
        "relabel the images 0 (normal) and 1 (pneumonia), and drop those of any other class",
    ),
    (
        "label -1",
        IMAGES,
        np.array([-1, 1] * 3),
        "label values [-1] outside {0, 1}",
        "relabel the images 0 (normal) and 1 (pneumonia), and drop those of any other class",
    ),
    (
        "one class only",
        IMAGES,
        np.zeros(6, np.int64),
        "6 images of class normal (0) only",
        "both normal (0) and pneumonia (1) are needed: add pneumonia (1) images to it",
    ),
    (
        "no images",
        IMAGES[:0],
        LABELS[:0],
        "no images",
        "add images of both classes, normal (0) and pneumonia (1)",
    ),
]


def _case_ids(cases):
    return [c[0] for c in cases]


@pytest.mark.parametrize(
    ("kind", "images", "labels", "problem", "fix"), MALFORMED, ids=_case_ids(MALFORMED)
)
def test_a_malformed_split_file_is_named_with_its_problem_and_a_fix(
    tmp_path, kind, images, labels, problem, fix
):
    path = tmp_path / "split.npz"
    write_arrays(path, images=images, labels=labels)
    with pytest.raises(DataError) as err:
        load_split(path, size=28)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and problem in msg and msg.endswith(fix), msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("kind", "images", "labels", "problem", "fix"), MALFORMED, ids=_case_ids(MALFORMED)
)
def test_a_malformed_medmnist_copy_is_named_with_its_problem_and_a_fix(
    tmp_path, kind, images, labels, problem, fix
):
    """The user's copy: the bad arrays as its training split, val and test valid."""
    raw = make_medmnist()
    raw["train_images"], raw["train_labels"] = images, labels
    np.savez(tmp_path / "copy.npz", **raw)
    with pytest.raises(DataError) as err:
        validate_medmnist(tmp_path / "copy.npz", 28)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'copy.npz'} [train]: ") and problem in msg, msg
    assert msg.endswith(fix) and "\n" not in msg


def _pickled(p):
    """Images of two sizes kept as a list: numpy stores an object array, pickled."""
    images = np.empty(2, dtype=object)
    images[0], images[1] = IMAGES[0], IMAGES[1][:, :20]
    np.savez(p, images=images, labels=LABELS[:2])


def _truncated(p):
    save_split(p, *arrays())
    p.write_bytes(p.read_bytes()[:-500])


UNREADABLE = "replace it (for a pipeline output: delete it and run dvc repro)."
BAD_FILES = [
    ("no file", lambda p: None, "file not found", "Run the stage that makes it (dvc repro)."),
    ("not an npz", lambda p: p.write_bytes(b"\x00garbage" * 10), "not a readable npz", UNREADABLE),
    ("truncated", _truncated, "not a readable npz (BadZipFile)", UNREADABLE),
    (
        "pickled object array",
        _pickled,
        "array 'images' is a pickled object array, which is never loaded",
        "labels integers 0 and 1",
    ),
    (
        "keys misnamed",
        lambda p: write_arrays(p, pictures=IMAGES, labels=LABELS),
        "missing key(s) ['images'] (has ['labels', 'pictures'])",
        "Rerun the stage that writes it.",
    ),
]


@pytest.mark.parametrize(("kind", "make", "problem", "fix"), BAD_FILES, ids=_case_ids(BAD_FILES))
def test_an_unreadable_split_file_is_named_with_its_problem_and_a_fix(
    tmp_path, kind, make, problem, fix
):
    path = tmp_path / "split.npz"
    make(path)
    with pytest.raises(DataError) as err:
        load_split(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and problem in msg and msg.endswith(fix), msg


NUMERIC_FIX = (
    "Save it as a plain numeric array: images one uint8 N x H x W array (np.stack the images, "
    "all of one size), labels integers 0 and 1"
)


STRING_FIX = "Save it as a plain string array: np.array(values, dtype=str)"
PICKLED_KEYS = [
    ("train_patients", STRING_FIX),
    ("val_files", STRING_FIX),
    ("source_file", STRING_FIX),
    ("source_split", STRING_FIX),
    ("source_index", "Save it as a plain integer array: np.array(values, dtype=np.int64)"),
    ("images", NUMERIC_FIX),
    ("test_labels", NUMERIC_FIX),
]


@pytest.mark.parametrize(("key", "fix"), PICKLED_KEYS, ids=[k for k, _ in PICKLED_KEYS])
def test_a_pickled_array_gets_the_fix_for_what_its_key_holds(tmp_path, key, fix):
    """Before: patient ids and file paths were told to be 'labels integers 0 and 1'."""
    values = np.empty(2, dtype=object)
    values[0], values[1] = "person1_virus_6.jpeg", 7
    np.savez(tmp_path / "x.npz", **{key: values})
    with pytest.raises(DataError) as err:
        read_arrays(tmp_path / "x.npz")
    assert str(err.value) == (
        f"{tmp_path / 'x.npz'}: array {key!r} is a pickled object array, which is never loaded "
        f"(unpickling can run code). {fix}"
    )


def test_a_pickled_medmnist_copy_is_called_pickled_and_download_writes_nothing(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(medmnist, "MEDMNIST_CACHE", tmp_path / "no_cache")
    monkeypatch.delenv(medmnist.DATA_DIR_ENV, raising=False)
    raw = make_medmnist()
    raw["train_labels"] = np.array([str(v) for v in raw["train_labels"][:, 0]], dtype=object)
    np.savez(tmp_path / "pneumoniamnist.npz", **raw)
    with pytest.raises(DataError, match="array 'train_labels' is a pickled object array") as err:
        medmnist.fetch(28, tmp_path / "out" / "raw.npz", path=tmp_path)
    assert "truncated" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_one_class_split_is_allowed_when_asked(tmp_path):
    images, _ = arrays()
    save_split(tmp_path / "s.npz", images, np.ones(6, np.int64))
    with pytest.raises(DataError, match=r"pneumonia \(1\) only"):
        load_split(tmp_path / "s.npz")
    _, labels = load_split(tmp_path / "s.npz", need_both_classes=False)
    assert labels.tolist() == [1] * 6


def test_truncated_npz_is_reported(tmp_path):
    path = tmp_path / "t.npz"
    save_split(path, *arrays())
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(DataError, match="not a readable npz") as err:
        load_split(path)
    assert str(path) in str(err.value) and "truncated" in str(err.value)


def test_size_mismatch(tmp_path):
    save_split(tmp_path / "s.npz", *arrays())
    with pytest.raises(DataError, match="images are 28 px, expected 64 px"):
        load_split(tmp_path / "s.npz", size=64)
    assert load_split(tmp_path / "s.npz", size=28)[0].shape == (6, 28, 28)


def test_validate_split_names_where():
    images, labels = arrays()
    validate_split(images, labels, "here")  # valid: no error
    with pytest.raises(DataError, match=r"^here: "):
        validate_split(images[:, None], labels, "here")


def test_medmnist_file_is_validated_per_split(tmp_path):
    raw = make_medmnist()
    np.savez(tmp_path / "ok.npz", **raw)
    sizes = validate_medmnist(tmp_path / "ok.npz", 28)
    assert sizes == {s: int(raw[f"{s}_labels"].shape[0]) for s in SPLITS}
    np.savez(tmp_path / "part.npz", **{k: v for k, v in raw.items() if not k.startswith("val")})
    with pytest.raises(DataError, match=r"missing key\(s\) \['val_images', 'val_labels'\]"):
        validate_medmnist(tmp_path / "part.npz", 28)
    raw["val_labels"] = raw["val_labels"] * 0
    np.savez(tmp_path / "bad.npz", **raw)
    with pytest.raises(DataError, match=r"bad\.npz \[val\]: .* only"):
        validate_medmnist(tmp_path / "bad.npz", 28)
    with pytest.raises(DataError, match=r"\[train\]: images are 28 px, expected 64 px"):
        validate_medmnist(tmp_path / "ok.npz", 64)
