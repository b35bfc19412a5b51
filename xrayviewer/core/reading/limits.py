"""What one file may make the app read or allocate, checked before any decoder sees it.

A reviewer's workstation must survive a damaged or hostile file: a 3 KB file whose header claims a
30000 x 30000 picture, an 8 GB file that is not an image, a named pipe that never ends. The limits are far
above any radiograph (a 43 x 43 cm detector at 100 um is 4300 x 4300 pixels) and low enough that one image
stays well under 1.5 GB of memory through decoding, windowing and the model.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from xrayviewer.core.errors import CorruptFileError, TooLargeError, UnsupportedFileError

MAX_VALUES = 1 << 26  # pixel values in one frame (rows x columns x samples): 8192 x 8192 grayscale
MAX_FILE_BYTES = 1 << 29  # 512 MiB
MAX_FRAMES_BYTES = 1 << 30  # every frame of a file decoded at once (cine): 1 GiB
_SPECIAL = {stat.S_ISFIFO: "named pipe (FIFO)", stat.S_ISCHR: "character device", stat.S_ISBLK: "block device",
            stat.S_ISSOCK: "socket", stat.S_ISDIR: "folder"}


def open_regular(path: Path) -> tuple[BinaryIO, int]:
    """Open `path` for reading if it is a regular file within the size limit; (file, size in bytes).

    The file is opened without blocking and checked with fstat, so a FIFO or a device is refused without
    a byte being read from it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise UnsupportedFileError(path, "file not found", "nothing exists at that path",
                                   "Check the path, or open the folder that holds it.") from None
    except IsADirectoryError:
        raise UnsupportedFileError(path, "is a folder", "a single image was expected",
                                   "Open the folder as a study instead.") from None
    except OSError as exc:
        raise UnsupportedFileError(path, "cannot read file", exc.strerror or str(exc),
                                   "Check the file's permissions and that its drive is connected.") from None
    mode = os.fstat(fd)
    kind = next((name for test, name in _SPECIAL.items() if test(mode.st_mode)), None)
    if kind or not stat.S_ISREG(mode.st_mode):
        os.close(fd)
        if kind == "folder":
            raise UnsupportedFileError(path, "is a folder", "a single image was expected",
                                       "Open the folder as a study instead.")
        raise UnsupportedFileError(path, "not a regular file", f"it is a {kind or 'special file'}, not an image "
                                   "file on disk", "Copy the image to a file and open that.")
    if mode.st_size > MAX_FILE_BYTES:
        os.close(fd)
        raise TooLargeError(path, "file too large", f"it holds {_size(mode.st_size)}, over the "
                            f"{_size(MAX_FILE_BYTES)} limit for one image file",
                            "Open a single frame or a downsampled copy exported from the PACS.")
    return os.fdopen(fd, "rb"), mode.st_size


def check_declared(path: Path, rows: int, columns: int, samples: int = 1, source: str = "its header",
                   total: int | None = None) -> None:
    """Refuse an image whose declared size is impossible or over `MAX_VALUES`, before it is decoded.

    `total` is the values of all pages together where a decoder reads them all (multi-page TIFF).
    """
    if rows <= 0 or columns <= 0 or samples <= 0:
        raise CorruptFileError(path, "impossible image size", f"{source} declares {rows} x {columns} pixels "
                               f"of {samples} sample(s)", "The file is damaged; export or copy it again.")
    if rows * columns * samples > MAX_VALUES:
        colour = f" x {samples} samples" if samples > 1 else ""
        raise TooLargeError(path, "image too large", f"{source} declares {rows:,} x {columns:,} pixels{colour}, "
                            f"over the limit of {MAX_VALUES:,} values per image (8192 x 8192 grayscale)",
                            "Open a downsampled copy; if the size is not what the image really is, the file "
                            "is damaged.")
    if total and total > MAX_VALUES:
        raise TooLargeError(path, "image too large", f"{source} declares pages of {total:,} values together, over "
                            f"the limit of {MAX_VALUES:,} values per file", "Save the page you need as its own file.")


def check_all_frames(path: Path, frames: int, frame_bytes: int) -> None:
    """Refuse to decode every frame at once when together they would take more than MAX_FRAMES_BYTES."""
    if frames * frame_bytes > MAX_FRAMES_BYTES:
        decoded = _size(frames * frame_bytes)
        raise TooLargeError(path, "too many frames to play", f"its {frames:,} frames take {decoded} decoded, over "
                            f"the {_size(MAX_FRAMES_BYTES)} limit for playing them",
                            "Step through the frames with the frame box instead.")


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MB"
