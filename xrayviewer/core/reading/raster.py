"""PNG, JPEG, TIFF and BMP files via OpenCV, decoded from bytes so any path works."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from xrayviewer.core.errors import CorruptFileError, FrameIndexError
from xrayviewer.core.reading import headers
from xrayviewer.core.reading.display import percentile_window
from xrayviewer.core.reading.limits import check_declared
from xrayviewer.core.reading.quiet import native_output_silenced
from xrayviewer.core.reading.record import ImageRecord, Metadata, Window


def silence_opencv() -> None:
    """OpenCV's own warnings about damaged files would reach the user's terminal; the reader reports them itself.

    OpenCV 5 has `cv2.utils.logging`; the 4.x wheels (the Windows installer's 4.11 among them) have only
    `cv2.setLogLevel`, where 0 is silent.
    """
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(0)


silence_opencv()

MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
}


def sniff(head: bytes) -> str | None:
    """The raster format whose signature `head` starts with, or None."""
    return next((fmt for magic, fmt in MAGIC.items() if head.startswith(magic)), None)


def read_raster(path: Path, data: bytes, frame: int = 0) -> ImageRecord:
    """Decode `data` (the bytes of `path`), keeping its native bit depth.

    Colour files whose three channels are equal (as most exported X-rays are)
    become grayscale; alpha is dropped after compositing over black.
    """
    fmt = sniff(data[:8]) or "image"
    _check_header(path, fmt, data)
    if fmt == "JPEG" and data.rfind(b"\xff\xd9") < len(data) - 1024:
        raise CorruptFileError(path, "truncated JPEG", "the end-of-image marker is missing, so the "
                               "lower part of the picture was never written", "Export or copy the file again.")
    pages = _decode_pages(fmt, np.frombuffer(data, np.uint8))
    if not pages:
        raise CorruptFileError(path, f"unreadable {fmt}", "OpenCV could not decode its pixels (the file is "
                               "damaged or truncated)", "Export or copy the file again.")
    if not 0 <= frame < len(pages):
        raise FrameIndexError(path, f"no frame {frame}", f"the file has {len(pages)} frame(s)",
                              f"Choose a frame from 0 to {len(pages) - 1}.")
    pixels = _normalise_channels(pages[frame])
    bits = 16 if pixels.dtype == np.uint16 else 8
    if pixels.dtype == np.uint8:
        window = Window.from_range(0, 255)  # the file's own rendering, as the model was trained on
    elif pixels.ndim == 2:
        window = percentile_window(pixels)
    else:
        window = Window.from_range(0, float(np.iinfo(pixels.dtype).max) if pixels.dtype.kind in "iu" else 1.0)
    return ImageRecord(
        pixels=np.ascontiguousarray(pixels),
        window=window,
        path=str(path),
        frame=frame,
        frames=len(pages),
        format=fmt,
        photometric="RGB" if pixels.ndim == 3 else "MONOCHROME2",
        bits_stored=bits,
        metadata=Metadata(modality="", series_description=path.name),
    )


def _decode_pages(fmt: str, buffer: np.ndarray) -> list[np.ndarray]:
    """Every page OpenCV decodes (TIFF can hold several); [] when it cannot decode the data."""
    with native_output_silenced():
        try:
            if fmt == "TIFF":
                ok, pages = cv2.imdecodemulti(buffer, cv2.IMREAD_UNCHANGED)
                return list(pages) if ok else []
            image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        except cv2.error:
            return []
    return [] if image is None else [image]


def _check_header(path: Path, fmt: str, data: bytes) -> None:
    """Refuse a file whose header is broken or declares an image over the size limit, before OpenCV decodes it."""
    try:
        declared = headers.RASTER[fmt](data)
    except headers.HeaderError as exc:
        raise CorruptFileError(path, f"damaged {fmt} file", str(exc),
                               "The file is damaged or truncated; export or copy it again.") from None
    check_declared(path, declared.rows, declared.columns, declared.samples, f"its {fmt} header", declared.values)


def _normalise_channels(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) or gray -> gray `[H, W]` or RGB `[H, W, 3]`."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    if image.shape[2] == 4:
        alpha = image[:, :, 3:].astype(np.float32) / np.iinfo(image.dtype).max
        image = (image[:, :, :3] * alpha + 0.5).astype(image.dtype)
    b, g, r = image[:, :, 0], image[:, :, 1], image[:, :, 2]
    if np.array_equal(b, g) and np.array_equal(g, r):
        return b.copy()
    return image[:, :, ::-1].copy()
