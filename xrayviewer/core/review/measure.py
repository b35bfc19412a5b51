"""Measurements on a film in its own pixel coordinates: length, angle and region statistics.

Lengths are in mm when the file gives a pixel spacing (PixelSpacing, else ImagerPixelSpacing: row, column
spacing in mm), else in pixels, and the result says which. Points are (x, y) = (column, row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xrayviewer.core.reading.record import ImageRecord
from xrayviewer.core.review.store import Mark

Point = tuple[float, float]


@dataclass(frozen=True)
class Measured:
    value: float
    unit: str  # "mm", "px", "deg", "mean"
    text: str  # what the viewer writes beside the mark


def length(record: ImageRecord, a: Point, b: Point) -> Measured:
    """The distance from `a` to `b`: mm with the pixel spacing, else px (and the text says it is uncalibrated)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    spacing = record.metadata.pixel_spacing
    if spacing is None:
        value = math.hypot(dx, dy)
        return Measured(value, "px", f"{value:.1f} px (no pixel spacing in the file)")
    row_mm, col_mm = spacing
    value = math.hypot(dx * col_mm, dy * row_mm)
    return Measured(value, "mm", f"{value:.1f} mm")


def angle(a: Point, vertex: Point, b: Point) -> Measured:
    """The angle at `vertex` between the rays to `a` and `b`, in degrees (0 to 180)."""
    u = (a[0] - vertex[0], a[1] - vertex[1])
    v = (b[0] - vertex[0], b[1] - vertex[1])
    value = abs(math.degrees(math.atan2(u[0] * v[1] - u[1] * v[0], u[0] * v[0] + u[1] * v[1])))
    return Measured(value, "deg", f"{value:.1f}\u00b0")


def roi(record: ImageRecord, a: Point, b: Point) -> Measured:
    """Mean and standard deviation of the pixel values (modality units) in the rectangle from `a` to `b`."""
    x0, x1 = sorted((int(round(a[0])), int(round(b[0]))))
    y0, y1 = sorted((int(round(a[1])), int(round(b[1]))))
    x0, y0 = max(x0, 0), max(y0, 0)
    region = record.pixels[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].astype(np.float64)
    if region.size == 0:
        return Measured(float("nan"), "mean", "outside the film")
    if region.ndim == 3:
        region = region.mean(axis=2)
    mean, sd = float(region.mean()), float(region.std())
    spacing = record.metadata.pixel_spacing
    area = (f"{region.size * spacing[0] * spacing[1]:.0f} mm\u00b2" if spacing
            else f"{region.size} px\u00b2")
    return Measured(mean, "mean", f"mean {mean:.1f}  SD {sd:.1f}  ({area})")


def measure(record: ImageRecord, kind: str, points: list[Point], text: str = "") -> Mark:
    """A Mark with its value filled in for `kind` (length, angle, roi; arrow and text carry no value)."""
    found = None
    if kind == "length":
        found = length(record, points[0], points[1])
    elif kind == "angle":
        found = angle(points[0], points[1], points[2])
    elif kind == "roi":
        found = roi(record, points[0], points[1])
    if found is None:
        return Mark(kind, list(points), text)
    return Mark(kind, list(points), found.text, found.value, found.unit)
