"""One entry point that turns any file a reviewer drops in into an `ImageRecord`, or a clear refusal."""

from __future__ import annotations

from pathlib import Path

from xrayviewer.core.dicom import read_dicom
from xrayviewer.core.errors import CorruptFileError, UnsupportedFileError
from xrayviewer.core.raster import read_raster, sniff
from xrayviewer.core.record import ImageRecord

SUPPORTED = "DICOM, PNG, JPEG, TIFF or BMP"
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


def read_bytes(path: str | Path) -> bytes:
    """The whole file, with file-system failures turned into project errors."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UnsupportedFileError(path, "file not found", "nothing exists at that path",
                                   "Check the path, or open the folder that holds it.") from None
    except IsADirectoryError:
        raise UnsupportedFileError(path, "is a folder", "a single image was expected",
                                   "Open the folder as a study instead.") from None
    except OSError as exc:
        raise UnsupportedFileError(path, "cannot read file", exc.strerror or str(exc),
                                   "Check the file's permissions and that its drive is connected.") from None
    if not data:
        raise CorruptFileError(path, "empty file", "it holds 0 bytes", "Copy or export the file again.")
    return data


def read_image(path: str | Path, frame: int = 0) -> ImageRecord:
    """Read frame `frame` of `path`, deciding the format by content, not by the file name."""
    path = Path(path)
    data = read_bytes(path)
    kind = kind_of(data[:132])
    if kind == "raster":
        return read_raster(path, data, frame)
    if kind in ("dicom", "dicom-raw"):
        return read_dicom(path, data, frame, force=kind == "dicom-raw")
    raise UnsupportedFileError(path, "unsupported file", f"its content is not {SUPPORTED}",
                               f"Open a {SUPPORTED} file.")
