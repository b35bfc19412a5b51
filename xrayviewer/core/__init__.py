"""The Qt-free core: reading, windowing, and (later) analysis. Nothing under here imports Qt."""

from xrayviewer.core.display import to_display, to_gray
from xrayviewer.core.errors import (
    CorruptFileError,
    FrameIndexError,
    ImageReadError,
    MissingDecoderError,
    NoPixelDataError,
    TooLargeError,
    UnsupportedFileError,
    XRayViewerError,
)
from xrayviewer.core.reader import read_image
from xrayviewer.core.record import ImageRecord, Metadata, Window
from xrayviewer.core.study import StudyTree, scan

__all__ = [
    "CorruptFileError", "FrameIndexError", "ImageReadError", "ImageRecord", "Metadata", "MissingDecoderError",
    "NoPixelDataError", "StudyTree", "TooLargeError", "UnsupportedFileError", "Window", "XRayViewerError",
    "read_image", "scan", "to_display", "to_gray",
]
