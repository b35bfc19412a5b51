"""Issue 11, item 3: sizes and file kinds are checked before anything is decoded or read whole.

Each hostile file is small (or sparse); the test runs the real reader, in a subprocess where memory or a block
matters, and checks the refusal names the file and the limit.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_fragments

from xrayviewer.core import CorruptFileError, TooLargeError, UnsupportedFileError, read_image, scan
from xrayviewer.core.reading.limits import MAX_FILE_BYTES, MAX_VALUES


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid small PNG whose IHDR (with a correct CRC) declares `width` x `height`."""
    ok, buf = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    data = buf.tobytes()
    ihdr = struct.pack(">II", width, height) + data[24:29]
    path.write_bytes(data[:8] + _chunk(b"IHDR", ihdr) + data[33:])
    return path


def _peak_mb_of(code: str) -> tuple[str, float]:
    """Run `code` in a fresh interpreter; (what it printed, its peak resident memory in MB, 0 where unknown).

    VmHWM, not ru_maxrss: Linux carries the forking parent's (pytest's) peak over into ru_maxrss.
    """
    wrapped = code + ("\nfrom pathlib import Path\nstatus = Path('/proc/self/status')\n"
                      "lines = status.read_text().splitlines() if status.exists() else []\n"
                      "print(next((int(l.split()[1]) / 1024 for l in lines if l.startswith('VmHWM:')), 0))")
    out = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, timeout=120, check=True)
    *lines, peak = out.stdout.strip().splitlines()
    return "\n".join(lines), float(peak)


def test_png_declaring_30000_squared_is_refused_before_decoding(tmp_path):
    path = _png_claiming(tmp_path / "huge.png", 30000, 30000)
    with pytest.raises(TooLargeError) as err:
        read_image(path)
    message = str(err.value)
    assert "huge.png" in message and "30,000 x 30,000" in message and f"{MAX_VALUES:,}" in message
    said, peak = _peak_mb_of(f"from xrayviewer.core import read_image, XRayViewerError\n"
                             f"try:\n    read_image({str(path)!r})\nexcept XRayViewerError as e:\n    print(e.what)")
    assert said == "image too large" and peak < 400  # OpenCV alone would take 1.8 GB on this file


def test_png_chunk_length_past_the_end_is_refused(tmp_path):
    ok, buf = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    data = buf.tobytes()
    path = tmp_path / "chunk.png"
    path.write_bytes(data[:33] + struct.pack(">I", 0xFFFFFFFF) + data[37:])
    with pytest.raises(CorruptFileError, match="chunk.png.*4,294,967,295 bytes"):
        read_image(path)


@pytest.mark.parametrize("ext", [".jpg", ".tif", ".bmp"])
def test_other_raster_headers_declaring_huge_sizes(tmp_path, ext):
    ok, buf = cv2.imencode(ext, np.zeros((8, 8, 3), np.uint8))
    data = bytearray(buf.tobytes())
    if ext == ".jpg":
        sof = next(i for i in range(2, len(data)) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
        data[sof + 5:sof + 9] = struct.pack(">HH", 30000, 30000)
    elif ext == ".bmp":
        data[18:26] = struct.pack("<ii", 30000, -30000)
    else:
        ifd = struct.unpack("<I", data[4:8])[0]
        for entry in range(ifd + 2, ifd + 2 + 12 * struct.unpack("<H", data[ifd:ifd + 2])[0], 12):
            if struct.unpack("<H", data[entry:entry + 2])[0] in (256, 257):
                data[entry + 2:entry + 12] = struct.pack("<HII", 4, 1, 30000)
    path = tmp_path / f"huge{ext}"
    path.write_bytes(bytes(data))
    with pytest.raises(TooLargeError, match=f"huge{ext}.*30,000 x 30,000"):
        read_image(path)


def test_tiff_whose_pages_loop_is_refused(tmp_path):
    ok, buf = cv2.imencode(".tif", np.zeros((8, 8), np.uint8))
    data = bytearray(buf.tobytes())
    ifd = struct.unpack("<I", data[4:8])[0]
    end = ifd + 2 + 12 * struct.unpack("<H", data[ifd:ifd + 2])[0]
    data[end:end + 4] = struct.pack("<I", ifd)
    path = tmp_path / "loop.tif"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="loop.tif.*loop"):
        read_image(path)


def test_dicom_declaring_30000_squared_is_refused(pydicom_test_files, tmp_path):
    ds = pydicom.dcmread(pydicom_test_files / "CT_small.dcm")
    ds.Rows = ds.Columns = 30000
    path = tmp_path / "huge.dcm"
    ds.save_as(path)
    with pytest.raises(TooLargeError, match="huge.dcm.*DICOM header declares 30,000 x 30,000"):
        read_image(path)


def test_jpeg_in_dicom_claiming_30000_squared_is_refused_in_bounded_memory(pydicom_test_files, tmp_path):
    """The issue's 3.4 KB file: DICOM header 100 x 100, its JPEG frame header 30000 x 30000 (17.5 GB before)."""
    ds = pydicom.dcmread(pydicom_test_files / "SC_rgb_jpeg_gdcm.dcm")
    frame = bytearray(list(generate_fragments(ds.PixelData))[1])  # the item after the (empty) offset table
    sof = next(i for i in range(2, len(frame)) if frame[i] == 0xFF and frame[i + 1] in (0xC0, 0xC1, 0xC3))
    frame[sof + 5:sof + 9] = struct.pack(">HH", 30000, 30000)
    ds.PixelData = encapsulate([bytes(frame)])
    path = tmp_path / "jpeg-claims-huge.dcm"
    ds.save_as(path)
    assert path.stat().st_size < 20_000
    said, peak = _peak_mb_of(f"from xrayviewer.core import read_image, XRayViewerError\n"
                             f"try:\n    read_image({str(path)!r})\nexcept XRayViewerError as e:\n    print(e)")
    assert "jpeg-claims-huge.dcm" in said and "30,000 x 30,000" in said and "image too large" in said
    assert peak < 400


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    code = (f"from xrayviewer.core import read_image, scan, XRayViewerError\n"
            f"try:\n    read_image({str(fifo)!r})\nexcept XRayViewerError as e:\n    print(e)\n"
            f"print(scan({str(tmp_path)!r}).problems[0].reason)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)  # blocked before
    assert out.returncode == 0, out.stderr
    refusal, problem = out.stdout.strip().splitlines()
    assert "pipe.dcm: not a regular file: it is a named pipe (FIFO)" in refusal
    assert "not a regular file" in problem


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_devices_are_refused_without_reading():
    with pytest.raises(UnsupportedFileError, match="/dev/zero: not a regular file: it is a character device"):
        read_image("/dev/zero")


def test_large_files_are_refused_by_size_or_by_content_without_reading_them_whole(tmp_path):
    """Two sparse 8 GB files (no disk used): one that is not an image, one that starts like DICOM."""
    text_file, dicom_like = tmp_path / "big.bin", tmp_path / "big.dcm"
    for path, head in ((text_file, b"a log file, not an image\n"), (dicom_like, bytes(128) + b"DICM")):
        with path.open("wb") as f:
            f.write(head)
            f.truncate(8 << 30)
    for path in (text_file, dicom_like):
        with pytest.raises(TooLargeError, match=f"{path.name}: file too large: it holds 8.0 GB, over the "
                                                f"{MAX_FILE_BYTES >> 20} MB limit"):
            read_image(path)
    small = tmp_path / "notes.dcm"
    small.write_bytes(b"x" * 5000)
    with pytest.raises(UnsupportedFileError, match="notes.dcm: unsupported file"):
        read_image(small)
    reasons = {p.path.name: p.reason for p in scan(tmp_path).problems}
    assert reasons["big.bin"].startswith("file too large") and reasons["big.dcm"].startswith("file too large")


def test_a_folder_named_like_an_image(tmp_path):
    folder = tmp_path / "film.png"
    folder.mkdir()
    with pytest.raises(UnsupportedFileError, match="film.png: is a folder"):
        read_image(folder)


def test_within_the_limit_still_reads(tmp_path):
    image = (np.arange(3000 * 2000) % 4096).astype(np.uint16).reshape(3000, 2000)
    ok, buf = cv2.imencode(".png", image)
    path = tmp_path / "large-but-fine.png"
    path.write_bytes(buf.tobytes())
    record = read_image(path)
    assert record.pixels.shape == (3000, 2000) and record.pixels.dtype == np.uint16


def test_over_2_to_the_30_pixels_is_a_clean_error_not_cv2_error(tmp_path):
    path = _png_claiming(tmp_path / "giga.png", 40000, 40000)  # 1.6e9 pixels: OpenCV itself raised cv2.error
    with pytest.raises(TooLargeError, match="giga.png: image too large: its PNG header declares 40,000 x 40,000"):
        read_image(path)


def test_playing_frames_that_would_not_fit_in_memory_is_refused_and_stepping_still_works(dicom_data, monkeypatch):
    """Cine decodes every frame at once; a film whose frames together pass the limit is refused, one frame is not."""
    from xrayviewer.core.reading import limits
    from xrayviewer.core.reading.reader import read_frames

    path = dicom_data / "emri_small.dcm"  # 10 frames
    frames = read_frames(path)
    together = sum(f.pixels.nbytes for f in frames)
    assert len(frames) == frames[0].frames > 1
    monkeypatch.setattr(limits, "MAX_FRAMES_BYTES", together - 1)
    with pytest.raises(TooLargeError, match=f"too many frames to play: its {len(frames)} frames take"):
        read_frames(path)
    assert read_image(path, len(frames) - 1).frame == len(frames) - 1
