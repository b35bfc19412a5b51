"""DICOM export through highdicom: a Secondary Capture of the exported view and a Comprehensive SR.

Both objects join the source film's study (same patient and Study Instance UID, a new series each), so a
PACS files them beside the film. The SC references the source image (Source Image Sequence); the SR is a
TID 1500 Measurement Report with the AI result (algorithm name and model file hash, probability, finding),
the reader's decision and note, and each length, angle and ROI measurement as a region on the source image.
A film that is not DICOM has no study to join: the objects then start a new study, and the SR's regions refer
to the SC, which has the film's pixel geometry.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from xrayviewer import __version__
from xrayviewer.core.review.report_image import Reading

MANUFACTURER = "XRay Viewer"
SCT, DCM_SCHEME = "SCT", "99XRAYVIEWER"
PNEUMONIA = hd.sr.CodedConcept("233604007", SCT, "Pneumonia")
PRESENT = hd.sr.CodedConcept("52101004", SCT, "Present")
ABSENT = hd.sr.CodedConcept("2667000", SCT, "Absent")
INDETERMINATE = hd.sr.CodedConcept("82334004", SCT, "Indeterminate")
OTHER = hd.sr.CodedConcept("74964007", SCT, "Other")
NOT_JUDGED = hd.sr.CodedConcept("NOT-JUDGED", DCM_SCHEME, "Not judged by the model")
READER_CALL = {"pneumonia": PRESENT, "normal": ABSENT, "uncertain": INDETERMINATE, "other": OTHER}
PROBABILITY = hd.sr.CodedConcept("P-PNEUMONIA", DCM_SCHEME, "Probability of pneumonia (model output)")
CHEST_XRAY = hd.sr.CodedConcept("399208008", SCT, "Plain chest X-ray")
ANNOTATIONS = {"arrow": "POLYLINE", "text": "POINT"}  # mark kind -> graphic type of its region (no value)
MEASURES = {  # mark kind -> (concept, unit for its Mark.unit)
    "length": hd.sr.CodedConcept("410668003", SCT, "Length"),
    "angle": hd.sr.CodedConcept("1483009", SCT, "Angle"),
    "roi": hd.sr.CodedConcept("373098007", SCT, "Mean"),
}
UNITS = {"mm": codes.UCUM.Millimeter, "px": hd.sr.CodedConcept("{pixels}", "UCUM", "pixels"),
         "deg": codes.UCUM.Degree, "mean": hd.sr.CodedConcept("1", "UCUM", "no units")}


@dataclass(frozen=True)
class Exported:
    sc: Path
    sr: Path


def source_dataset(reading: Reading) -> tuple[Dataset, bool]:
    """The film's header (True) or, for a picture file, a header for a new study (False)."""
    record = reading.record
    if record.format == "dicom":
        return pydicom.dcmread(record.path, stop_before_pixels=True, force=True), True
    ds = Dataset()
    now = datetime.now()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "", "", "", ""
    ds.StudyInstanceUID, ds.StudyID, ds.AccessionNumber = generate_uid(), "", ""
    ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = now.strftime("%Y%m%d"), now.strftime("%H%M%S"), ""
    ds.Modality = "OT"
    return ds, False


def export_dicom(reading: Reading, picture: np.ndarray, folder: Path) -> Exported:
    """Write `picture` (RGB, the exported view) as an SC and the reading as an SR into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    source, is_dicom = source_dataset(reading)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # highdicom's remarks on the source's own names
        sc = secondary_capture(source, picture, is_dicom)
        sr = structured_report(reading, source if is_dicom else sc, sc)
    stem = Path(reading.record.path).stem
    paths = Exported(folder / f"{stem}.sc.dcm", folder / f"{stem}.sr.dcm")
    for dataset, path in ((sc, paths.sc), (sr, paths.sr)):
        temporary = path.with_name(f".{path.name}.tmp")
        dataset.save_as(temporary, enforce_file_format=True)
        temporary.replace(path)  # a crash leaves the old file or the new one, never half of one
    return paths


def secondary_capture(source: Dataset, picture: np.ndarray, is_dicom: bool) -> hd.sc.SCImage:
    orientation = _orientation(source)
    rgb = np.ascontiguousarray(picture if picture.ndim == 3 else np.stack([picture] * 3, axis=-1), np.uint8)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=generate_uid(), series_number=9901,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        patient_orientation=orientation or ("L", "F"), transfer_syntax_uid=pydicom.uid.ExplicitVRLittleEndian)
    if orientation is None:
        sc.PatientOrientation = None  # type 2: present and empty, "unknown", rather than a guess
    sc.SeriesDescription = "AI overlay (research use only, not a diagnosis)"
    sc.ImageComments = "XRay Viewer overlay: heatmap, measurements and result; research use only"
    sc.SoftwareVersions = __version__
    if is_dicom:
        reference = Dataset()
        reference.ReferencedSOPClassUID = source.SOPClassUID
        reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
        sc.SourceImageSequence = [reference]
        sc.DerivationDescription = "Film with an AI heatmap overlay, measurements and a result block"
    return sc


def _orientation(source: Dataset) -> tuple[str, str] | None:
    """The film's Patient Orientation when it gives both directions (the SC has the film's geometry)."""
    value = list(source.get("PatientOrientation", []) or [])
    return (str(value[0]), str(value[1])) if len(value) == 2 and all(value) else None


def structured_report(reading: Reading, image: Dataset, sc: Dataset) -> hd.sr.ComprehensiveSR:
    """The measurement report; `image` is the dataset the regions are drawn on (the film, else the SC)."""
    observers = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=_person_name(reading.decision.reader if reading.decision else ""))),
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=generate_uid(), name=MANUFACTURER, manufacturer_name=MANUFACTURER)))
    groups = [_ai_group(reading), _reader_group(reading)]
    groups += [_mark_group(mark, image, i) for i, mark in enumerate(reading.marks, 1)
               if mark.kind in ANNOTATIONS or (mark.kind in MEASURES and mark.value is not None
                                                 and np.isfinite(mark.value))]
    report = hd.sr.MeasurementReport(observation_context=observers, procedure_reported=CHEST_XRAY,
                                     imaging_measurements=[g for g in groups if g is not None])
    evidence = [image] if image is sc else [image, sc]
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence, content=report[0], series_instance_uid=generate_uid(), series_number=9902,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        is_complete=True, is_final=False, is_verified=False)
    sr.SeriesDescription = "AI result and reader decision (research use only)"
    sr.SoftwareVersions = __version__
    return sr


def _person_name(name: str) -> str:
    """A free-text reader name as a DICOM person name: one component, marked by a trailing caret."""
    name = name.strip() or "Reader"
    return name if "^" in name else f"{name}^"


def _ai_group(reading: Reading) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    a = reading.analysis
    if a is None:  # no model ran: the report says so rather than being empty
        return hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="AI result"),
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(PNEUMONIA, NOT_JUDGED)])
    algorithm = hd.sr.AlgorithmIdentification(name=a.model, version=(reading.model_sha256[:16] or __version__),
                                              parameters=[f"method={a.method}", f"threshold={a.threshold:.4f}"])
    measurements = []
    if a.probability is not None:
        measurements.append(hd.sr.Measurement(name=PROBABILITY, value=round(float(a.probability), 6),
                                              unit=UNITS["mean"], algorithm_id=algorithm))
    finding = NOT_JUDGED if a.label is None else PRESENT if a.label == "PNEUMONIA" else ABSENT
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="AI result"),
        algorithm_id=algorithm, measurements=measurements or None,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(PNEUMONIA, finding)])


def _reader_group(reading: Reading) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    d = reading.decision
    if d is None:
        return None
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="Reader decision"),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(PNEUMONIA, READER_CALL[d.decision])])
    if d.note:
        group[0].ContentSequence.append(hd.sr.TextContentItem(
            name=codes.DCM.Comment, value=d.note[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return group


def _mark_group(mark, image: Dataset, number: int) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """A measurement (length, angle, ROI) or an annotation (arrow, text) as a region on `image`."""
    points = list(mark.points)
    if mark.kind == "roi":
        (x0, y0), (x1, y1) = points
        points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    if mark.kind == "text":
        points = points[-1:]  # the text's anchor
    region = hd.sr.ImageRegion(graphic_type=ANNOTATIONS.get(mark.kind, "POLYLINE"),
                               graphic_data=np.array(points, dtype=np.float64) + 0.5,
                               source_image=hd.sr.SourceImageForRegion(image.SOPClassUID, image.SOPInstanceUID))
    measurements = None if mark.kind in ANNOTATIONS else [hd.sr.Measurement(
        name=MEASURES[mark.kind], value=round(float(mark.value), 4), unit=UNITS.get(mark.unit, UNITS["mean"]))]
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{mark.kind} {number}"),
        referenced_region=region, measurements=measurements)
    if mark.kind in ANNOTATIONS and mark.text:
        group[0].ContentSequence.append(hd.sr.TextContentItem(
            name=codes.DCM.Comment, value=mark.text[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return group
