"""The demo study: the adult chest CR that the `pydicom-data` package ships (RG1, MONOCHROME1, 15-bit).

The files are not committed here; they come with `pip install xrayviewer[demo]`.
Source: pydicom-data (https://github.com/pydicom/pydicom-data), MIT licence.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from xrayviewer.core.errors import XRayViewerError

DEMO_FILE = "RG1_J2KR.dcm"
SOURCE = "pydicom-data package (RG1 adult chest CR)"


def data_store_folder() -> Path:
    """The folder of DICOM files that pydicom-data installs, without any download."""
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
