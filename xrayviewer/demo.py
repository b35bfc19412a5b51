"""The demo study: the adult chest CR that the `pydicom-data` package ships (RG1, MONOCHROME1, 15-bit).

The files are not committed here; they come with `pip install xrayviewer[demo]`. A frozen (PyInstaller) build,
such as the Windows installer's, ships the two demo files in the `demo` folder of its bundle instead.
Source: pydicom-data (https://github.com/pydicom/pydicom-data), MIT licence.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from xrayviewer.core.errors import XRayViewerError

DEMO_FILE = "RG1_J2KR.dcm"
SOURCE = "pydicom-data package (RG1 adult chest CR)"


def bundled_folder() -> Path | None:
    """In a frozen (PyInstaller) app, the bundle's `demo` folder when it holds the demo film; otherwise None."""
    base = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or base is None:
        return None
    folder = Path(base) / "demo"
    return folder if (folder / DEMO_FILE).is_file() else None


def data_store_folder() -> Path:
    """The folder of the demo DICOM files: a frozen app's own `demo` folder, else the one that pydicom-data
    installs, without any download."""
    bundled = bundled_folder()
    if bundled is not None:
        return bundled
    spec = importlib.util.find_spec("data_store")
    if spec is None or not spec.submodule_search_locations:
        raise XRayViewerError(None, "demo study not installed", "the pydicom-data package is missing",
                              'Install it with: pip install "xrayviewer[demo]".')
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def demo_path() -> Path:
    """Path of the demo chest film."""
    return data_store_folder() / DEMO_FILE


def demo_paths() -> list[Path]:
    """The demo study: the chest CR first, then an extremity CR (RG3) that the OOD gate should flag."""
    folder = data_store_folder()
    return [folder / DEMO_FILE, folder / "RG3_J2KR.dcm"]
