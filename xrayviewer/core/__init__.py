"""The Qt-free core: reading, windowing, and (later) analysis. Nothing under here imports Qt.

Names are loaded on first use (PEP 562), so that the viewer's window can appear before pydicom and its decoder
plug-ins (gdcm alone takes a few hundred ms to import) are loaded.
"""

from importlib import import_module

_HOMES = {
    "to_display": "display", "to_gray": "display",
    "CorruptFileError": "errors", "FrameIndexError": "errors", "ImageReadError": "errors",
    "MissingDecoderError": "errors", "NoPixelDataError": "errors", "TooLargeError": "errors",
    "UnsupportedFileError": "errors",
    "XRayViewerError": "errors",
    "read_image": "reader",
    "ImageRecord": "record", "Metadata": "record", "Window": "record",
    "StudyTree": "study", "scan": "study",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        try:
            return import_module(f"{__name__}.{name}")  # a submodule: `from xrayviewer.core import export`
        except ModuleNotFoundError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
