"""The immutable image record every reader returns and every later step reads."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Window:
    """A display window in the pixel values' own units (DICOM: after the modality LUT)."""

    center: float
    width: float

    @property
    def lower(self) -> float:
        return self.center - self.width / 2

    @property
    def upper(self) -> float:
        return self.center + self.width / 2

    @classmethod
    def from_range(cls, lower: float, upper: float) -> "Window":
        return cls((lower + upper) / 2, max(upper - lower, 1e-6))


@dataclass(frozen=True)
class Metadata:
    """What a reviewer reads in the corner text and the tag dialog; empty strings when unknown."""

    patient_name: str = ""
    patient_id: str = ""
    patient_age: str = ""  # DICOM age string, e.g. "045Y", "030M", "2W"
    patient_birth_date: str = ""  # YYYYMMDD
    patient_sex: str = ""
    accession: str = ""
    study_date: str = ""
    acquisition_date: str = ""  # AcquisitionDate, else ContentDate: when the film was taken
    study_description: str = ""
    series_description: str = ""
    modality: str = ""
    body_part: str = ""
    view_position: str = ""
    pixel_spacing: tuple[float, float] | None = None
    study_uid: str = ""
    series_uid: str = ""
    instance_number: int | None = None


@dataclass(frozen=True)
class ImageRecord:
    """One frame of one file: native pixels, how to show them, and what the file says about them.

    `pixels` is read-only, `[rows, cols]` for grayscale or `[rows, cols, 3]` RGB.
    For DICOM it holds modality values (rescale slope/intercept applied) or the
    VOI LUT output when the file carries a VOI LUT; `invert_default` is true for
    MONOCHROME1, whose low values are bright.
    """

    pixels: np.ndarray
    window: Window
    path: str
    frame: int = 0
    frames: int = 1
    format: str = "raster"  # "dicom" or "raster"
    photometric: str = "MONOCHROME2"
    bits_stored: int = 8
    transfer_syntax: str = ""
    invert_default: bool = False
    metadata: Metadata = field(default_factory=Metadata)
    notes: tuple[str, ...] = ()  # header values the reader could not use and what it did instead

    def __post_init__(self) -> None:
        self.pixels.setflags(write=False)

    @cached_property
    def value_range(self) -> tuple[float, float]:
        """(min, max) of the pixels, computed once: windowing and the W/L drag speed use it."""
        return float(self.pixels.min()), float(self.pixels.max())

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 3

    @property
    def rows(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def columns(self) -> int:
        return int(self.pixels.shape[1])

    def with_window(self, window: Window) -> "ImageRecord":
        return replace(self, window=window)
