"""Raster files through OpenCV: bit depths, channels, palettes, pages, odd paths and broken files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from xrayviewer.core import CorruptFileError, FrameIndexError, read_image, to_display


def _write(path: Path, image: np.ndarray) -> Path:
    ok, buf = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _palette_png(path: Path, indices: np.ndarray, palette: list[tuple[int, int, int]]) -> Path:
    """A real 8-bit palette PNG (colour type 3), written chunk by chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = indices.shape
    rows = b"".join(b"\x00" + indices[y].astype(np.uint8).tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
                     + chunk(b"PLTE", bytes(c for rgb in palette for c in rgb))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def gradient() -> np.ndarray:
    return np.tile(np.arange(256, dtype=np.uint8), (64, 1))


def test_8bit_gray_png_full_range_window(tmp_path, gradient):
    r = read_image(_write(tmp_path / "g.png", gradient))
    assert r.pixels.dtype == np.uint8 and r.pixels.shape == (64, 256)
    assert (r.window.lower, r.window.upper) == (0, 255)
    assert np.array_equal(to_display(r), gradient)  # an 8-bit file is shown as it is


def test_16bit_png_keeps_native_depth(tmp_path):
    image = (np.random.default_rng(0).random((80, 90)) * 4095).astype(np.uint16)
    r = read_image(_write(tmp_path / "g16.png", image))
    assert r.pixels.dtype == np.uint16 and r.bits_stored == 16
    assert np.array_equal(r.pixels, image)
    assert 0 <= r.window.lower < r.window.upper <= 4095  # a percentile window inside the used range


def test_identical_channels_become_gray_and_colour_stays_rgb(tmp_path, gradient):
    gray3 = np.dstack([gradient] * 3)
    assert read_image(_write(tmp_path / "g3.jpg", gray3)).pixels.ndim == 2
    bgr = np.zeros((10, 10, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    r = read_image(_write(tmp_path / "blue.png", bgr))
    assert r.is_color and r.photometric == "RGB"
    assert r.pixels[0, 0].tolist() == [0, 0, 200]  # reported as RGB


def test_rgba_alpha_is_composited_over_black(tmp_path):
    bgra = np.full((8, 8, 4), 255, np.uint8)
    bgra[..., 3] = 0
    bgra[:4, ..., 3] = 255
    r = read_image(_write(tmp_path / "a.png", bgra))
    assert r.pixels.ndim == 2
    assert r.pixels[:4].min() == 255 and r.pixels[4:].max() == 0


def test_palette_png(tmp_path):
    indices = np.array([[0, 1], [2, 1]])
    r = read_image(_palette_png(tmp_path / "pal.png", indices, [(255, 0, 0), (0, 255, 0), (0, 0, 255)]))
    assert r.is_color
    assert r.pixels[0, 0].tolist() == [255, 0, 0] and r.pixels[1, 0].tolist() == [0, 0, 255]


def test_multipage_tiff_frames(tmp_path):
    pages = [np.full((20, 30), v, np.uint16) for v in (100, 2000, 4000)]
    path = tmp_path / "stack.tif"
    assert cv2.imwritemulti(str(path), pages)
    r = read_image(path, 2)
    assert r.frames == 3 and r.pixels.dtype == np.uint16 and int(r.pixels[0, 0]) == 4000
    with pytest.raises(FrameIndexError, match="3 frame"):
        read_image(path, 3)


def test_non_ascii_path(tmp_path, gradient):
    folder = tmp_path / "Röntgen 胸部 Ωmega"
    folder.mkdir()
    r = read_image(_write(folder / "Thorax_ä.png", gradient))
    assert r.path.endswith("Thorax_ä.png") and r.pixels.shape == (64, 256)


def test_png_renamed_dcm_loads_by_content(tmp_path, gradient):
    png = _write(tmp_path / "g.png", gradient)
    renamed = tmp_path / "film.dcm"
    png.rename(renamed)
    assert read_image(renamed).format == "PNG"


def test_jpeg_with_broken_tail(tmp_path, gradient):
    big = cv2.resize(gradient, (512, 512))
    data = _write(tmp_path / "ok.jpg", big).read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CorruptFileError, match="broken.jpg.*end-of-image"):
        read_image(broken)


def test_garbage_after_png_signature(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    with pytest.raises(CorruptFileError, match="bad.png"):
        read_image(bad)


def test_shared_chest_films_load(kermany):
    paths = sorted((kermany / "NORMAL").glob("*.jpeg"))[:5] + sorted((kermany / "PNEUMONIA").glob("*.jpeg"))[:5]
    assert len(paths) == 10
    for path in paths:
        r = read_image(path)
        assert r.pixels.shape == (224, 224) and r.pixels.dtype == np.uint8  # three equal channels -> gray
        assert r.format == "JPEG"
