"""Shared fixtures: real DICOM files from pydicom-data and pydicom, and real chest films: the whole training set
where it is (`$XRAYVIEWER_CHEST_FILMS`, else `../shared/data/kermany224/train`), else the 16 films of
`tests/data/chest` (see its README), so that no chest-film test skips on a fresh clone."""

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

# The chest films (Kermany, 224 px, NORMAL/ and PNEUMONIA/): $XRAYVIEWER_CHEST_FILMS, else ../shared beside the clone,
# else the handful kept with the tests (all from the validation side of the whole set's split)
CHEST_FILMS_VARIABLE = "XRAYVIEWER_CHEST_FILMS"
FIXTURE_FILMS = Path(__file__).resolve().parent / "data" / "chest"
WHOLE_SET = Path(os.environ.get(CHEST_FILMS_VARIABLE)
                 or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kermany224" / "train")
KERMANY = WHOLE_SET if all((WHOLE_SET / c).is_dir() for c in ("NORMAL", "PNEUMONIA")) else FIXTURE_FILMS


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
    """A folder of chest films, NORMAL/ and PNEUMONIA/: the whole set where it is, else the 16 kept with the tests."""
    return KERMANY


@pytest.fixture(scope="session")
def whole_set(kermany) -> bool:
    """Whether `kermany` is the whole training set (5,216 films) rather than the handful kept with the tests."""
    return kermany.resolve() != FIXTURE_FILMS


@pytest.fixture(scope="session")
def validation_films(kermany, whole_set) -> list:
    """Films of patients the shipped models were not trained on (`converters.dataset.Sample`s, sorted by path): the
    validation side of the whole set's seeded split (505 films), else all 16 kept with the tests (picked from it)."""
    from converters import dataset

    samples = dataset.list_samples(kermany)
    return dataset.split_samples(samples)["val"] if whole_set else samples
