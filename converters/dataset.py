"""The labelled chest films and their seeded, patient-level split.

Used by the training recipe and the converter (verification films, feature
statistics). No Keras import here, so it also runs in the plain app environment.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("NORMAL", "PNEUMONIA")
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kermany224" / "train"
_PATIENT = re.compile(r"^(person\d+|NORMAL2-IM-\d+|IM-\d+)")
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # 1 = PNEUMONIA
    patient: str


def patient_of(name: str) -> str:
    """Patient ID from a Kermany file name (`person1000_bacteria_2931.jpeg` -> `person1000`)."""
    match = _PATIENT.match(name)
    if not match:
        raise ValueError(f"{name}: file name does not carry a patient ID")
    return match.group(1)


def list_samples(root: Path = DEFAULT_DATA) -> list[Sample]:
    """Every film under `root/NORMAL` and `root/PNEUMONIA`, sorted by path."""
    samples = []
    for label, cls in enumerate(CLASSES):
        folder = Path(root) / cls
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: missing class folder (expected NORMAL/ and PNEUMONIA/)")
        for path in sorted(folder.glob("*.jpeg")):
            samples.append(Sample(path, label, patient_of(path.name)))
    return samples


def split_samples(samples: list[Sample], seed: int = 1234) -> dict[str, list[Sample]]:
    """Seeded split by patient (80/10/10 within each class), so no patient is on two sides."""
    by_class: dict[int, list[str]] = {0: [], 1: []}
    for patient, label in sorted({(s.patient, s.label) for s in samples}):
        by_class[label].append(patient)
    side_of: dict[str, str] = {}
    rng = random.Random(seed)
    for patients in by_class.values():
        rng.shuffle(patients)
        n_val = round(len(patients) * SPLIT_FRACTIONS["val"])
        n_test = round(len(patients) * SPLIT_FRACTIONS["test"])
        for i, patient in enumerate(patients):
            side_of[patient] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    split: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for s in samples:
        split[side_of[s.patient]].append(s)
    return split


def load_gray(samples: list[Sample], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Films as uint8 gray `[N, size, size]` (INTER_AREA, as the app resizes) and labels `[N]`."""
    images = np.empty((len(samples), size, size), np.uint8)
    for i, s in enumerate(samples):
        gray = cv2.imdecode(np.fromfile(s.path, np.uint8), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise ValueError(f"{s.path}: not a readable image")
        images[i] = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    return images, np.array([s.label for s in samples], np.float32)
