"""The Qt-free core, in three wings, each importing only the ones below it (errors.py is shared by all):

- `reading`: files, DICOM, studies, windowing: file -> pixel array;
- `analysis`: model contract, sessions, gate, CAM and overlays: pixel array -> model input -> (probability, CAM);
- `review`: review store, worklist, reports and exports: what the reader decided, kept and sent on.

Nothing under here imports Qt. The names below are loaded on first use (PEP 562), so that the viewer's window can
appear before pydicom and its decoder plug-ins (gdcm alone takes a few hundred ms to import) are loaded.
"""

from importlib import import_module

_HOMES = {
    "to_display": "reading.display", "to_gray": "reading.display",
    "CorruptFileError": "errors", "FrameIndexError": "errors", "ImageReadError": "errors",
    "MissingDecoderError": "errors", "NoPixelDataError": "errors", "TooLargeError": "errors",
    "UnsupportedFileError": "errors",
    "XRayViewerError": "errors",
    "read_image": "reading.reader",
    "ImageRecord": "reading.record", "Metadata": "reading.record", "Window": "reading.record",
    "StudyTree": "reading.study", "scan": "reading.study",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
