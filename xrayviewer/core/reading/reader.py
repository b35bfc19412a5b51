"""One entry point that turns any file a reviewer drops in into an `ImageRecord`, or a clear refusal."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from xrayviewer.core.errors import CorruptFileError, UnsupportedFileError, XRayViewerError
from xrayviewer.core.reading.dicom import read_dicom
from xrayviewer.core.reading.limits import check_all_frames, open_regular
from xrayviewer.core.reading.raster import read_raster, sniff
from xrayviewer.core.reading.record import ImageRecord

SUPPORTED = "DICOM, PNG, JPEG, TIFF or BMP"
HEAD_BYTES = 132  # enough for the DICOM preamble and "DICM", and every raster signature
_FIRST_GROUPS = {0x0002, 0x0008}


def kind_of(head: bytes) -> str | None:
    """"dicom", "raster", "dicom-raw" (no preamble, plausible first tag) or None, from a file's first bytes."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if sniff(head):
        return "raster"
    # A bare data set (no preamble) starts with a low group tag such as (0008,0005), in either byte order.
    if len(head) >= 8 and (int.from_bytes(head[:2], "little") in _FIRST_GROUPS
                           or int.from_bytes(head[:2], "big") in _FIRST_GROUPS):
        return "dicom-raw"
    return None


def read_image(path: str | Path, frame: int = 0) -> ImageRecord:
    """Read frame `frame` of `path`, deciding the format by content, not by the file name.

    Only regular files within the size limit are opened, and only the first bytes are read before the format
    is known: a pipe, a device or a large file that is not an image is refused without being read.
    """
    path = Path(path)
    file, kind = _open_image(path)
    with file:
        if kind == "raster":
            return read_raster(path, file.read(), frame)
        return read_dicom(path, file, frame, force=kind == "dicom-raw")


def read_frames(path: str | Path) -> list[ImageRecord]:
    """Every frame of a file, read from disk once and each frame decoded once."""
    path = Path(path)
    file, kind = _open_image(path)
    with file:
        data = file.read()
    if kind == "raster":
        first = read_raster(path, data, 0)
        check_all_frames(path, first.frames, first.pixels.nbytes)
        return [first] + [read_raster(path, data, i) for i in range(1, first.frames)]
    first = read_dicom(path, BytesIO(data), 0, force=kind == "dicom-raw")
    check_all_frames(path, first.frames, first.pixels.nbytes)
    return [first] + [read_dicom(path, BytesIO(data), i, force=kind == "dicom-raw") for i in range(1, first.frames)]


def not_an_image(path: Path, head: bytes) -> XRayViewerError:
    """The error for a file whose first bytes are no image: empty, or of a format not read (one wording for the
    viewer, the command line and the study scan)."""
    if not head:
        return CorruptFileError(path, "empty file", "it holds 0 bytes", "Copy or export the file again.")
    return UnsupportedFileError(path, "unsupported file", f"its content is not {SUPPORTED}",
                                f"Open a {SUPPORTED} file.")


def _open_image(path: Path) -> tuple[BinaryIO, str]:
    """The file opened at its start, and its kind; refused when it is not a regular, non-empty image file."""
    file, size = open_regular(path)
    try:
        head = file.read(HEAD_BYTES)
        kind = kind_of(head)
        if kind is None:
            raise not_an_image(path, head)
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return file, kind
