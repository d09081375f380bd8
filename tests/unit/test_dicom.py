"""DICOM reading: modality LUT, window or VOI LUT, MONOCHROME1, and every refusal named."""

import json

import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from pneumogan.classify.checkpoint import Classifier, save_classifier
from pneumogan.classify.nets import ClassifierConfig, build
from pneumogan.classify.predictor import predict_proba
from pneumogan.core.transforms import ImageTransform
from pneumogan.data.readers import ReadError, find_images, is_dicom, read_image
from pneumogan.serve import cli


def write_dicom(
    path,
    pixels,
    *,
    photometric="MONOCHROME2",
    bits=12,
    signed=False,
    rescale=None,
    window=None,
    voi_lut=None,
    samples=1,
):
    """A minimal single-frame DICOM Part 10 file (explicit VR little endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        first, out_bits, table = voi_lut
        item = Dataset()
        item.LUTDescriptor = [len(table), first, out_bits]
        item.add_new(0x00283006, "OW", np.asarray(table, np.uint16).tobytes())  # LUTData
        ds.VOILUTSequence = [item]
    ds.save_as(path, enforce_file_format=True)
    return path


RAMP = np.array([[0, 1024, 2048, 4095]], dtype=np.uint16)


def test_no_voi_scales_the_stored_range(tmp_path):
    out = read_image(write_dicom(tmp_path / "a.dcm", RAMP))
    assert out.dtype == np.uint8 and out.tolist() == [[0, 64, 128, 255]]


def test_window_maps_its_own_range_to_0_255(tmp_path):
    pixels = np.array([[500, 750, 1000, 1250, 3000]], dtype=np.uint16)
    out = read_image(write_dicom(tmp_path / "w.dcm", pixels, window=(1000, 501)))
    assert out[0, 0] == 0 and out[0, -1] == 255  # outside the window: clipped
    assert abs(int(out[0, 2]) - 128) <= 1 and out[0, 1] <= 1 and out[0, 3] >= 254


def test_rescale_comes_before_the_window(tmp_path):
    # stored 1524 -> 2 * 1524 - 1024 = 2024 = the window's centre
    pixels = np.array([[0, 1524, 4095]], dtype=np.uint16)
    path = write_dicom(tmp_path / "r.dcm", pixels, rescale=(2, -1024), window=(2024, 1001))
    out = read_image(path)
    assert out[0, 0] == 0 and abs(int(out[0, 1]) - 128) <= 1 and out[0, 2] == 255


def test_monochrome1_is_inverted_after_voi(tmp_path):
    mono2 = read_image(write_dicom(tmp_path / "m2.dcm", RAMP))
    mono1 = read_image(write_dicom(tmp_path / "m1.dcm", RAMP, photometric="MONOCHROME1"))
    assert (mono1.astype(int) + mono2).tolist() == [[255] * 4]


def test_voi_lut_sequence_is_applied_and_scaled_from_its_output_bits(tmp_path):
    table = (4095 - np.arange(4096)) * 16  # 12 bits in, 16 bits out, reversed
    out = read_image(write_dicom(tmp_path / "l.dcm", RAMP, voi_lut=(0, 16, table)))
    expected = np.round((4095 - RAMP.astype(float)) * 16 / 65535 * 255)
    assert out.tolist() == expected.tolist() == [[255, 191, 127, 0]]  # the LUT decided


def test_dicom_is_found_by_its_marker_not_its_name(tmp_path):
    path = write_dicom(tmp_path / "looks_like.png", RAMP)
    assert is_dicom(path) and read_image(path).tolist() == [[0, 64, 128, 255]]
    (tmp_path / "fake.dcm").write_bytes(b"\0" * 200)
    assert not is_dicom(tmp_path / "fake.dcm")
    with pytest.raises(ReadError, match=r"fake\.dcm: not an image this reader knows"):
        read_image(tmp_path / "fake.dcm")
    assert tmp_path / "fake.dcm" in find_images([tmp_path])


def test_bits_above_bits_stored_are_ignored(tmp_path):
    pixels = np.array([[0, 4095 + 4096]], dtype=np.uint16)  # bit 12 set, above BitsStored
    assert read_image(write_dicom(tmp_path / "o.dcm", pixels)).tolist() == [[0, 255]]


def test_colour_dicom_is_refused_with_its_photometric(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint16)
    path = write_dicom(tmp_path / "c.dcm", rgb, photometric="RGB", bits=8, samples=3)
    with pytest.raises(ReadError, match=r"RGB DICOM .* only single-frame grayscale"):
        read_image(path)


def test_a_broken_jpeg_2000_stream_is_one_line_with_a_fix(tmp_path, caplog):
    """pydicom's error spans two lines and names a BytesIO at a memory address; it also logs
    a traceback per failed decoder, which a stage's logging would print."""
    path = write_dicom(tmp_path / "j2k.dcm", np.zeros((28, 28), np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00garbage" * 20])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ReadError) as err:
        read_image(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: DICOM pixel data that cannot be decoded (JPEG 2000 ")
    assert msg.endswith("export it uncompressed (Explicit VR Little Endian) or as PNG")
    assert "\n" not in msg and " at 0x" not in msg
    assert not [r for r in caplog.records if r.exc_info]


def test_a_dicom_past_the_pixel_limit_is_refused_before_decoding(tmp_path):
    path = write_dicom(tmp_path / "big.dcm", np.zeros((30, 40), np.uint16))
    with pytest.raises(ReadError) as err:
        read_image(path, max_pixels=1000, limit_flag="--max-pixels")
    assert str(err.value) == (
        f"{path}: 40 x 30 pixels (0.0012 megapixels), more than the 0.001 megapixels read at most; "
        "downscale it, or raise --max-pixels if you trust the file"
    )
    assert read_image(path, max_pixels=1200).shape == (30, 40)


def write_frames(path, frames, rows, cols):
    """A multi-frame MONOCHROME2 DICOM: `frames` frames of rows x cols."""
    write_dicom(path, np.zeros((rows, cols), np.uint16))
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = frames
    ds.PixelData = np.zeros((frames, rows, cols), np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(("frames", "max_pixels"), [(3, None), (300, 1000)])
def test_a_multi_frame_dicom_is_refused_before_the_size_check_and_decoding(
    tmp_path, monkeypatch, frames, max_pixels
):
    """Before: 300 frames of 16 x 16 were '16 x 4800 pixels ... downscale it', and 3 frames
    were all decoded before being refused."""
    path = write_frames(tmp_path / "cine.dcm", frames, 16, 16)

    def decoded(self):
        raise AssertionError("pixel data decoded")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(decoded))
    kw = {} if max_pixels is None else {"max_pixels": max_pixels, "limit_flag": "--max-pixels"}
    with pytest.raises(ReadError) as err:
        read_image(path, **kw)
    assert str(err.value) == (
        f"{path}: a DICOM of {frames} frames (16 x 16 pixels each); only single-frame "
        "grayscale (MONOCHROME1 or MONOCHROME2) images are supported: export one grayscale "
        "frame"
    )


def test_a_dicom_without_pixel_data_says_so(tmp_path):
    path = write_dicom(tmp_path / "meta.dcm", np.zeros((2, 2), np.uint16))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ReadError, match=r"meta\.dcm: a DICOM file without pixel data; export"):
        read_image(path)


def test_signed_pixels_use_the_signed_range(tmp_path):
    pixels = np.array([[-2048, 0, 2047]], dtype=np.int16)
    out = read_image(write_dicom(tmp_path / "s.dcm", pixels, signed=True))
    assert out.tolist() == [[0, 128, 255]]


def test_predict_reads_dicom_in_a_folder(tmp_path, capsys):
    torch.manual_seed(0)
    cfg = ClassifierConfig("resnet_small", 28, 4)
    clf = Classifier(build(cfg).eval(), cfg, ImageTransform(size=28), {})
    save_classifier(tmp_path / "m.safetensors", clf)
    pixels = (np.random.default_rng(0).integers(0, 4096, (28, 28))).astype(np.uint16)
    (tmp_path / "in").mkdir()
    write_dicom(tmp_path / "in/x.dcm", pixels)
    out = tmp_path / "p.json"
    args = ["predict", str(tmp_path / "in"), "--model", str(tmp_path / "m.safetensors")]
    assert cli.run([*args, "--threshold", "0.5", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["predictions"]
    expected = predict_proba(clf, read_image(tmp_path / "in/x.dcm")[None], batch_size=1)[0]
    assert row["file"].endswith("x.dcm") and abs(row["p_pneumonia"] - expected) < 1e-7
