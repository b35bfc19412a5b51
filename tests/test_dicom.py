"""DICOM decoding on real files from pydicom-data and pydicom's own test files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from xrayviewer.core import (
    CorruptFileError,
    FrameIndexError,
    NoPixelDataError,
    UnsupportedFileError,
    XRayViewerError,
    read_image,
    to_display,
)


def test_chest_cr_metadata_and_window(dicom_data):
    r = read_image(dicom_data / "RG1_J2KR.dcm")
    assert (r.rows, r.columns) == (1955, 1841)
    assert r.photometric == "MONOCHROME1" and r.invert_default
    assert r.bits_stored == 15
    assert r.transfer_syntax.startswith("1.2.840.10008.1.2.4.90")
    assert r.metadata.modality == "CR" and r.metadata.body_part == "CHEST"
    assert r.metadata.view_position == "PA"
    assert r.metadata.patient_id == "9RG1" and r.metadata.study_date == "20040826"
    assert (r.window.center, r.window.width) == (15000.0, 30000.0)  # the file's own VOI window
    assert not r.pixels.flags.writeable


def test_lossless_pairs_decode_identically(dicom_data):
    for stem in ("RG1", "RG3", "693", "US1"):
        uncompressed = read_image(dicom_data / f"{stem}_UNCR.dcm").pixels
        jpeg2000 = read_image(dicom_data / f"{stem}_J2KR.dcm").pixels
        assert np.array_equal(uncompressed, jpeg2000), stem


def test_lossy_jpeg2000_is_close_but_not_equal(dicom_data):
    exact = read_image(dicom_data / "RG1_UNCR.dcm").pixels.astype(np.float32)
    lossy = read_image(dicom_data / "RG1_J2KI.dcm").pixels.astype(np.float32)
    assert not np.array_equal(exact, lossy)
    assert np.abs(exact - lossy).mean() < 0.01 * exact.max()


def test_monochrome1_shows_bone_bright(dicom_data):
    disp = to_display(read_image(dicom_data / "RG1_UNCR.dcm"))
    h, w = disp.shape
    band = disp[int(h * 0.35):int(h * 0.6)].astype(float)
    spine = band[:, int(w * 0.47):int(w * 0.53)].mean()
    lungs = (band[:, int(w * 0.2):int(w * 0.35)].mean(), band[:, int(w * 0.65):int(w * 0.8)].mean())
    assert spine > max(lungs) + 30
    inverted = to_display(read_image(dicom_data / "RG1_UNCR.dcm"), invert=True)
    assert np.abs(inverted.astype(int) - (255 - disp.astype(int))).max() <= 1  # rounding only


def test_ct_modality_lut_gives_hounsfield_units(dicom_data):
    r = read_image(dicom_data / "693_UNCR.dcm")
    assert r.metadata.modality == "CT"
    assert r.pixels.min() <= -1000  # air and the area outside the scan field
    assert r.pixels.dtype.kind == "i"
    assert r.window.width > 0


def test_rgb_palette_and_ybr(dicom_data):
    us = read_image(dicom_data / "US1_UNCR.dcm")
    assert us.is_color and us.pixels.shape[2] == 3 and us.pixels.dtype == np.uint8
    palette = read_image(dicom_data / "OBXXXX1A.dcm")
    assert palette.photometric == "PALETTE COLOR" and palette.is_color
    assert to_display(palette).shape == palette.pixels.shape
    ybr = read_image(dicom_data / "SC_ybr_full_uncompressed.dcm")
    rgb = read_image(dicom_data / "SC_rgb.dcm")
    assert np.abs(ybr.pixels.astype(int) - rgb.pixels.astype(int)).max() <= 8  # same picture, YBR-to-RGB rounding aside


def test_multiframe_frame_index(dicom_data):
    path = dicom_data / "color3d_jpeg_baseline.dcm"
    first, later = read_image(path, 0), read_image(path, 60)
    assert first.frames == later.frames == 120
    assert first.is_color and later.frame == 60
    assert not np.array_equal(first.pixels, later.pixels)
    with pytest.raises(FrameIndexError, match="120 frame"):
        read_image(path, 120)


def test_signed_16bit(pydicom_test_files):
    r = read_image(pydicom_test_files / "CT_small.dcm")
    assert r.pixels.dtype.kind == "i" and r.pixels.min() < 0


@pytest.mark.parametrize("name", ["DICOMDIR", "rtplan.dcm", "reportsi.dcm", "waveform_ecg.dcm"])
def test_files_without_pixels_are_refused_by_name(pydicom_test_files, name):
    path = next(pydicom_test_files.rglob(name))
    with pytest.raises(NoPixelDataError) as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_every_pydicom_data_file_loads_or_raises_a_project_error(dicom_data):
    loaded, refused = [], []
    for path in sorted(dicom_data.glob("*.dcm")):
        try:
            r = read_image(path)
            assert r.pixels.size > 0 and to_display(r).dtype == np.uint8
            loaded.append(path.name)
        except XRayViewerError as exc:
            assert path.name in str(exc)
            refused.append(path.name)
    assert "RG1_J2KR.dcm" in loaded and len(loaded) >= 60
    assert refused == ["emri_small_jpeg_2k_lossless_too_short.dcm"]


def test_truncated_and_empty_dicom(dicom_data, tmp_path):
    data = (dicom_data / "RG1_UNCR.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="cut.dcm"):
        read_image(cut)
    header_only = tmp_path / "header.dcm"
    header_only.write_bytes(data[:300])
    with pytest.raises(XRayViewerError, match="header.dcm"):
        read_image(header_only)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(CorruptFileError, match="empty file"):
        read_image(empty)


def test_text_file_named_dcm_is_unsupported(tmp_path):
    fake = tmp_path / "notes.dcm"
    fake.write_text("Patient called at 10:30, film repeated.\n")
    with pytest.raises(UnsupportedFileError, match="notes.dcm"):
        read_image(fake)


def test_missing_decoder_names_transfer_syntax_and_package(dicom_data):
    """In a process whose JPEG 2000 decoder has no plug-ins left (pydicom's public API), the file is refused."""
    code = (  # xrayviewer first: it adds its own JPEG 2000 plug-in (imagecodecs), which goes too
        "from xrayviewer.core import read_image, MissingDecoderError\n"
        "from pydicom.pixels import get_decoder\nfrom pydicom.uid import JPEG2000Lossless\n"
        "decoder = get_decoder(JPEG2000Lossless)\n"
        "for name in list(decoder.available_plugins): decoder.remove_plugin(name)\n"
        f"try:\n    read_image({str(dicom_data / 'RG1_J2KR.dcm')!r})\n"
        "except MissingDecoderError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "RG1_J2KR.dcm" in out
    assert "1.2.840.10008.1.2.4.90" in out
    assert "pylibjpeg-openjpeg" in out
