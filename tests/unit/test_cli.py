"""`pneumogan predict`: readers, threshold choice, outputs and exit codes on tiny files."""

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pneumogan.classify.checkpoint import load_classifier
from pneumogan.classify.predictor import predict_proba
from pneumogan.core.errors import DataError
from pneumogan.data.readers import ReadError, find_images, fit, read_image
from pneumogan.serve import cli
from tests.conftest import make_images


@pytest.fixture
def metrics_file(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"threshold": 0.5, "at_val_threshold": {"threshold": 0.25}}))
    return path


def images(n=4, seed=0):
    labels = np.arange(n) % 2
    return make_images(labels, np.random.default_rng(seed))


def huge_png(path, width=20000, height=20000):
    """A PNG of a few dozen bytes whose header claims width x height pixels (400 megapixels by
    default, past Pillow's own bomb limit) and whose pixel data is empty."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    png = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png)
    return path


def test_png_round_trip_is_exact(tmp_path):
    x = images(1)[0]
    Image.fromarray(x).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), x)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 257 * 100], [65535, 257 * 200]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "a16.png")
    assert Image.open(tmp_path / "a16.png").mode == "I;16"
    assert read_image(tmp_path / "a16.png").tolist() == [[0, 100], [255, 200]]


def test_colour_jpeg_becomes_grayscale(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., :] = 200
    Image.fromarray(rgb).save(tmp_path / "c.JPG", quality=95)
    out = read_image(tmp_path / "c.JPG")
    assert out.shape == (8, 8) and out.dtype == np.uint8 and abs(int(out.mean()) - 200) <= 2


@pytest.mark.parametrize(
    ("content", "message", "fix"),
    [
        (b"not an image", "not an image this reader knows", "save it as one of those"),
        (None, "file not found", "check the path"),
    ],
)
def test_bad_files_name_the_file_and_the_reason(tmp_path, content, message, fix):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ReadError, match=message) as err:
        read_image(path)
    assert str(err.value).startswith(f"{path}: ") and str(err.value).endswith(fix)


def test_truncated_png_is_a_read_error(tmp_path):
    Image.fromarray(images(1)[0]).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError, match=r"t\.png: unreadable image \(OSError: .*\); the file is"):
        read_image(tmp_path / "t.png")


def test_an_image_past_the_pixel_limit_is_refused_from_its_header(tmp_path):
    """Pillow's DecompressionBombError (not an OSError) once escaped as a traceback."""
    path = huge_png(tmp_path / "huge.png")
    assert path.stat().st_size < 100
    with pytest.raises(ReadError) as err:
        read_image(path)
    assert str(err.value) == (
        f"{path}: 20000 x 20000 pixels (400 megapixels), more than the 50 megapixels read at "
        "most; downscale it"
    )
    small = huge_png(tmp_path / "small.png", 3000, 3000)  # under the limit: read, then truncated
    with pytest.raises(ReadError, match="more than the 1 megapixels read at most; downscale it, "):
        read_image(small, max_pixels=1_000_000, limit_flag="--max-pixels")
    with pytest.raises(ReadError, match="truncated"):
        read_image(small)


def test_a_limit_above_pillows_own_is_the_one_that_counts(tmp_path):
    """--max-pixels past Pillow's global limit lifts it while a file opens, and puts it back."""
    before = Image.MAX_IMAGE_PIXELS
    path = huge_png(tmp_path / "h.png")
    with pytest.raises(ReadError, match="truncated or corrupt"):  # opened: past the header
        read_image(path, max_pixels=500_000_000)
    assert before == Image.MAX_IMAGE_PIXELS


def test_one_bad_file_does_not_sink_the_batch(tmp_path, model_file, capsys):
    """a.png, a 400-megapixel PNG, b.png: one line for the bad file, predictions for the others,
    exit status 1; --max-pixels sets the limit."""
    x = images(2)
    Image.fromarray(x[0]).save(tmp_path / "a.png")
    Image.fromarray(x[1]).save(tmp_path / "b.png")
    huge = huge_png(tmp_path / "huge.png")
    paths = [str(tmp_path / n) for n in ("a.png", "huge.png", "b.png")]
    out = tmp_path / "p.json"
    argv = ["predict", *paths, "--model", str(model_file), "--threshold", "0.5"]
    assert cli.run([*argv, "--json", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        cli.NOTE,
        f"error: {huge}: 20000 x 20000 pixels (400 megapixels), more than the 50 megapixels "
        "read at most; downscale it, or raise --max-pixels if you trust the file",
        "1 of 3 files failed",
    ]
    rows = json.loads(out.read_text())["predictions"]
    assert [r["file"] for r in rows] == [paths[0], paths[2]]
    assert cli.run([*argv[:2], *argv[3:], "--max-pixels", "784"]) == 0  # a and b: 28 x 28
    assert cli.run([*argv[:2], *argv[3:], "--max-pixels", "783"]) == 1
    err = capsys.readouterr().err
    assert err.count("more than the 0.000783 megapixels") == 2 and "2 of 2 files failed" in err
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["predict", "a.png", "--max-pixels", "0"])


def test_find_images_searches_folders_and_keeps_named_files(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.png", "d/sub/a.JPEG", "d/notes.txt", "x.bin"):
        (tmp_path / name).write_bytes(b"")
    found = find_images([tmp_path / "d", tmp_path / "x.bin"])
    assert found == [tmp_path / "d/b.png", tmp_path / "d/sub/a.JPEG", tmp_path / "x.bin"]


def test_fit_keeps_a_fitting_image_and_crops_then_resizes_others():
    x = images(1)[0]
    assert fit(x, 28) is x
    wide = np.zeros((40, 80), np.uint8)
    wide[:, 20:60] = 255  # the centre square is all white
    out = fit(wide, 28)
    assert out.shape == (28, 28) and out.min() == 255


def test_threshold_from_option_metrics_or_validation(metrics_file, tmp_path):
    assert cli.choose_threshold(0.3, metrics_file) == (0.3, "--threshold")
    assert cli.choose_threshold(None, metrics_file)[0] == 0.5
    assert cli.choose_threshold("val", metrics_file)[0] == 0.25
    with pytest.raises(DataError, match="pass --threshold"):
        cli.choose_threshold(None, tmp_path / "missing.json")
    with pytest.raises(Exception, match="a number in"):
        cli.parse_threshold("1.5")


def test_predict_matches_the_predictor_and_reports_bad_files(
    tmp_path, model_file, metrics_file, capsys
):
    x = images(4)
    folder = tmp_path / "xrays"
    folder.mkdir()
    for i, image in enumerate(x):
        Image.fromarray(image).save(folder / f"img_{i}.png")
    (folder / "broken.png").write_bytes(b"garbage")
    out_csv, out_json = tmp_path / "p.csv", tmp_path / "p.json"
    args = ["predict", str(folder), "--model", str(model_file), "--metrics", str(metrics_file)]
    code = cli.run([*args, "--csv", str(out_csv), "--json", str(out_json)])
    assert code == 1  # one file failed, the others were predicted
    captured = capsys.readouterr()
    assert captured.err.count("error: ") == 1 and "broken.png" in captured.err
    assert "threshold 0.5" in captured.out
    expected = predict_proba(load_classifier(model_file), x, batch_size=8)
    doc = json.loads(out_json.read_text())
    got = [r["p_pneumonia"] for r in doc["predictions"]]
    np.testing.assert_allclose(got, expected, atol=1e-7)
    assert [r["label"] for r in doc["predictions"]] == [
        "pneumonia" if p >= 0.5 else "normal" for p in expected
    ]
    # a model without an input gate (older than it): every image called, the gate absent
    lines = out_csv.read_text().splitlines()
    assert lines[0] == "file,p_normal,p_pneumonia,ood_score,gate,label"
    assert all(line.endswith((",,absent,normal", ",,absent,pneumonia")) for line in lines[1:])
    assert [r["gate"] for r in doc["predictions"]] == ["absent"] * 4
    assert doc["gate_threshold"] is None
    assert captured.out.splitlines()[1].startswith("gate: absent")
    assert len(out_csv.read_text().splitlines()) == 5
    (folder / "broken.png").unlink()
    assert cli.run(args) == 0


def test_nothing_to_run_exits_2(tmp_path, model_file, metrics_file, capsys):
    assert cli.run(["predict", str(tmp_path), "--model", str(model_file)]) == 2
    assert "no PNG, JPEG or DICOM images" in capsys.readouterr().err
    Image.fromarray(images(1)[0]).save(tmp_path / "a.png")
    assert cli.run(["predict", str(tmp_path), "--model", str(tmp_path / "nope.safetensors")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


@pytest.mark.parametrize("onnx", [[], ["--onnx"]])
def test_outside_a_project_predict_says_to_pass_a_model(tmp_path, monkeypatch, capsys, onnx):
    Image.fromarray(images(1)[0]).save(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    assert cli.run(["predict", "a.png", *onnx]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "is not a pneumogan project; pass --model" in err[0], err
    assert "dvc repro -f" not in err[0]
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # inside a project: the stage to rerun
    assert cli.run(["predict", "a.png", *onnx]) == 2
    assert "dvc repro -f" in capsys.readouterr().err


def test_the_research_use_note_once_per_run_on_stderr(tmp_path, model_file, capsys):
    """One line on stderr per `predict` run that predicts, whatever the number of files or
    failures; never on stdout (the table), nor on a run that stops before predicting."""
    x = images(3)
    for i, image in enumerate(x):
        Image.fromarray(image).save(tmp_path / f"img_{i}.png")
    (tmp_path / "broken.png").write_bytes(b"garbage")
    argv = ["predict", str(tmp_path), "--model", str(model_file), "--threshold", "0.5"]
    assert cli.run(argv) == 1
    out, err = capsys.readouterr()
    assert cli.NOTE == "Research use only — not for diagnosis."
    assert err.splitlines().count(cli.NOTE) == 1 and err.splitlines()[0] == cli.NOTE
    assert "diagnosis" not in out and out.splitlines()[0] == "threshold 0.5 (--threshold)"
    (tmp_path / "broken.png").unlink()
    assert cli.run(argv) == 0
    assert capsys.readouterr().err == cli.NOTE + "\n"
    (tmp_path / "empty").mkdir()
    assert cli.run([*argv[:1], str(tmp_path / "empty"), *argv[2:]]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: no PNG, JPEG or DICOM images in {tmp_path / 'empty'}"
    ]
