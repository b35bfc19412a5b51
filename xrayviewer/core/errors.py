"""The errors XRay Viewer raises for files it cannot use.

Each message names the file, what failed, why, and what to do, in one line, so a
command-line tool can print it as it is and the viewer can show it in a banner.
"""

from __future__ import annotations

from pathlib import Path


class Cancelled(Exception):
    """Long work stopped because its result is no longer wanted (the film or the settings changed)."""


class XRayViewerError(Exception):
    """Base of every error the app reports to a user."""

    def __init__(self, path: str | Path | None, what: str, why: str, fix: str = "") -> None:
        self.path = str(path) if path is not None else None
        self.what, self.why, self.fix = _one_line(what), _one_line(why), _one_line(fix)
        subject = f"{_one_line(self.path)}: " if self.path else ""
        super().__init__(f"{subject}{self.reason}")

    @property
    def reason(self) -> str:
        """The message without the file's name (where the name is shown beside it, as in the study browser)."""
        return f"{self.what}: {_sentence(self.why)}" + (f" {self.fix}" if self.fix else "")


def _sentence(text: str) -> str:
    """`text` ended with a full stop, unless it already ends a sentence (a wrapped message: never "again..")."""
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _one_line(text: str) -> str:
    """`text` with control characters (a newline in a damaged file's value or name) shown as '?'."""
    return "".join(c if c.isprintable() else "?" for c in text)


class ImageReadError(XRayViewerError):
    """A file could not be turned into pixels."""


class UnsupportedFileError(ImageReadError):
    """The file is of a kind, or holds data of a kind, that the app does not read."""


class CorruptFileError(ImageReadError):
    """The file claims a known format but its content is broken or truncated."""


class MissingDecoderError(ImageReadError):
    """The pixel data is compressed with a transfer syntax no installed plug-in decodes."""


class NoPixelDataError(ImageReadError):
    """The DICOM file carries no image (a structured report, a DICOMDIR, a key object...)."""


class FrameIndexError(ImageReadError):
    """A frame was asked for that the file does not have."""


class TooLargeError(ImageReadError):
    """The file, or the image its header declares, is over a limit that keeps memory bounded."""


class OutputError(XRayViewerError):
    """A result could not be written where the user asked."""


def user_error(path: str | Path | None, exc: BaseException, what: str = "could not be processed") -> XRayViewerError:
    """`exc` as a message for the user naming `path`: a project error as it is, a file-system error with what to check,
    anything else (a fault of the app) in one line."""
    if isinstance(exc, XRayViewerError):
        return exc
    if isinstance(exc, OSError):  # the file system said no: not a fault of the app
        return XRayViewerError(path, what, exc.strerror or type(exc).__name__,
                               "Check the path, its permissions and that its drive is connected.")
    detail = " ".join(str(exc).split())[:300]
    return XRayViewerError(path, what, f"{type(exc).__name__}{': ' + detail if detail else ''}",
                           "This is a fault in XRay Viewer: please report it together with the file.")
