"""The heatmap on the film's own pixel grid: a DICOM Parametric Map, and the outline of its strongest evidence.

The model sees the whole film resized to its input (no crop), so its map, brought back to the film's size by the
same resize (`CamResult.map`), lies on the film's pixel grid: map pixel (row, column) is film pixel (row, column).
The Parametric Map holds that float map, one frame, derived from the film (Spatial Locations Preserved), for a viewer
that overlays Parametric Maps on their source images (not tried here with Weasis or OHIF).

A projection film (CR, DX) has no patient geometry: its header gives no position or orientation of its plane, and
often no Frame of Reference. The Parametric Map IOD needs both, so the map states the film's plane as it is known:
the film's Frame of Reference when it has one (else one made from the film's SOP Instance UID, the same at every
export), the film's orientation from its Patient Orientation (else rows along x and columns along y), its origin at
0, and the film's pixel spacing (else 1 mm, and the map's description says the spacing is unknown).
"""

from __future__ import annotations

import cv2
import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from xrayviewer import __version__
from xrayviewer.core.review.derived_uids import derived_uid
from xrayviewer.core.review.pacs import AI_HEATMAP_SERIES

MANUFACTURER = "XRay Viewer"
QUANTITIES = {"gradcam": codes.DCM.GradientWeightedClassActivation, "occlusion": codes.DCM.Saliency}
DIRECTIONS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "H": (0, 0, 1), "F": (0, 0, -1)}
OUTLINE_SHARE = 0.5  # the strongest evidence: where the map reaches this share of its peak
NO_UNITS = hd.sr.CodedConcept("1", "UCUM", "no units")


def strongest_outline(heat: np.ndarray) -> np.ndarray | None:
    """The closed outline (x, y points, first = last, pixel centres at +0.5) of the region around the map's peak
    where the map is at least OUTLINE_SHARE of its peak; None for an empty map."""
    peak = float(heat.max()) if heat.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        return None
    mask = (heat >= OUTLINE_SHARE * peak).astype(np.uint8)
    _, labels = cv2.connectedComponents(mask)
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    region = (labels == labels[y, x]).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contour = max(contours, key=cv2.contourArea)
    contour = cv2.approxPolyDP(contour, max(1.0, 0.005 * max(heat.shape)), True).reshape(-1, 2).astype(np.float64)
    if len(contour) < 3:  # a single pixel or a line: its bounding box
        (x0, y0), (x1, y1) = contour.min(axis=0), contour.max(axis=0) + 1
        contour = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], np.float64) - 0.5
    return np.vstack([contour, contour[:1]]) + 0.5


def parametric_map(source: Dataset, heat: np.ndarray, series_uid: str, sop_uid: str, model: str, model_sha256: str,
                   method: str, target: str) -> hd.pm.ParametricMap:
    """`heat` (float32 [rows, cols] in [0, 1], the film's grid) as a Parametric Map of `source` (its header)."""
    if heat.shape != (int(source.Rows), int(source.Columns)):
        raise ValueError(f"the heatmap is {heat.shape[1]} x {heat.shape[0]}, the film {source.Columns} x "
                         f"{source.Rows}")
    plane, orientation, spacing, known = _film_plane(source)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="EVIDENCE", lut_explanation=f"{method} evidence for {target} (1 = the model's reference)"[:64],
        unit=NO_UNITS, value_range=(0.0, 1.0), slope=1.0, intercept=0.0,
        quantity_definition=QUANTITIES.get(method, codes.DCM.ClassActivation))
    description = f"{model} {method} heatmap for {target}, research use only" + (
        "" if known else "; the film's pixel spacing is unknown (1 mm stated)")
    pm = hd.pm.ParametricMap(
        [plane], np.ascontiguousarray(heat, np.float32), series_uid, 9903, sop_uid, 1, MANUFACTURER, model[:64],
        __version__, model_sha256[:64] or "unknown", False, [mapping], content_label="HEATMAP",
        content_description=description[:64], voi_lut_transformations=[
            hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
        pixel_measures=hd.PixelMeasuresSequence(pixel_spacing=spacing, slice_thickness=None),
        plane_orientation=hd.PlaneOrientationSequence("PATIENT", orientation),
        plane_positions=[hd.PlanePositionSequence("PATIENT", [float(v) for v in plane.ImagePositionPatient])],
        content_qualification="RESEARCH", derivation=codes.DCM.ClassActivation)
    pm.SeriesDescription = AI_HEATMAP_SERIES
    if "ImagePositionPatient" not in source and "FrameOfReferenceUID" not in source:
        pm.PositionReferenceIndicator = None  # type 2: no anatomical reference point for the film's plane
    return pm


def _film_plane(source: Dataset) -> tuple[Dataset, tuple[float, ...], tuple[float, float], bool]:
    """A copy of the film's header with the plane the map states (see the module's text), that plane's
    orientation, the pixel spacing (row, column) and whether that spacing is the film's own."""
    plane = Dataset()
    plane.update(source)
    plane.FrameOfReferenceUID = source.get("FrameOfReferenceUID") or derived_uid("frame of reference",
                                                                                 str(source.SOPInstanceUID))
    spacing = pixel_spacing(source)
    orientation = tuple(float(v) for v in source.get("ImageOrientationPatient", []) or ()) or _orientation(source)
    plane.ImagePositionPatient = list(source.get("ImagePositionPatient", []) or (0.0, 0.0, 0.0))
    plane.ImageOrientationPatient = list(orientation)
    plane.PixelSpacing = list(spacing or (1.0, 1.0))
    plane.SliceThickness = source.get("SliceThickness") or 1.0  # read, then not written: the map has no thickness
    return plane, orientation, spacing or (1.0, 1.0), spacing is not None


def pixel_spacing(source: Dataset) -> tuple[float, float] | None:
    """The film's pixel spacing (row, column) in mm: Pixel Spacing, else Imager Pixel Spacing; None when unknown."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            row, column = (float(v) for v in source.get(keyword) or ())
        except (TypeError, ValueError):
            continue
        if row > 0 and column > 0 and np.isfinite([row, column]).all():
            return row, column
    return None


def _orientation(source: Dataset) -> tuple[float, ...]:
    """Row and column direction cosines from the film's Patient Orientation (its first letter each), else x and y."""
    value = [str(v) for v in (source.get("PatientOrientation") or [])]
    if len(value) == 2 and all(v[:1] in DIRECTIONS for v in value) and value[0][:1] != value[1][:1]:
        row, column = DIRECTIONS[value[0][0]], DIRECTIONS[value[1][0]]
        if np.dot(row, column) == 0:
            return (*map(float, row), *map(float, column))
    return 1.0, 0.0, 0.0, 0.0, 1.0, 0.0
