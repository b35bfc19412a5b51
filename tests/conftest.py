"""Shared fixtures: real DICOM files from pydicom-data and pydicom, and the shared chest films."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="xrayviewer-test-settings-")  # QSettings of the tests
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="xrayviewer-test-data-")  # the default review store

from xrayviewer.demo import data_store_folder  # noqa: E402

# The chest films (Kermany, 224 px, NORMAL/ and PNEUMONIA/): $XRAYVIEWER_CHEST_FILMS, else ../shared beside the clone
CHEST_FILMS_VARIABLE = "XRAYVIEWER_CHEST_FILMS"
KERMANY = Path(os.environ.get(CHEST_FILMS_VARIABLE)
               or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kermany224" / "train")


@pytest.fixture(scope="session")
def dicom_data() -> Path:
    """The folder of real DICOM files that the pydicom-data package installs."""
    return data_store_folder()


@pytest.fixture(scope="session")
def pydicom_test_files() -> Path:
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.fixture(scope="session")
def kermany() -> Path:
    if not KERMANY.is_dir():
        pytest.skip(f"chest films not found at {KERMANY}: set {CHEST_FILMS_VARIABLE} to a folder holding NORMAL/ and "
                    "PNEUMONIA/ (the Kermany training films)")
    return KERMANY
