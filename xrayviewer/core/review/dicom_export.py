"""DICOM export through highdicom: a Secondary Capture of the exported view and a Comprehensive SR.

Both objects join the source film's study (same patient and Study Instance UID, a new series each), so a
PACS files them beside the film. The SC references the source image (Source Image Sequence); the SR is a
TID 1500 Measurement Report with the AI result (algorithm name and model file hash, probability, finding),
the reader's decision and note, and each length, angle and ROI measurement as a region on the source image.
A film that is not DICOM has no study to join: the objects then start a study of their own, one per picture file
(its UID made from the file's content, so that every export of it lands in the same study), the SR names the
file, and its regions refer to the SC, in the SC's (turned, enlarged) coordinates.
The SC says the patient's name and ID are burned in, keeps the source's laterality, body part and study
description, and its Patient Orientation follows the rotation and flip shown. The SR's text is UTF-8 (ISO_IR 192);
it carries the population notes, the gate's reasons (refused or analysed out of scope, and which), the reader's
decision time, the ROI's mean, SD and area, and names a person observer only when a reader decided.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from xrayviewer import __version__
from xrayviewer.core.review.report_image import Reading, enlarged, oriented
from xrayviewer.core.reading.digest import file_sha256

MANUFACTURER = "XRay Viewer"
SCT, DCM_SCHEME = "SCT", "99XRAYVIEWER"
PNEUMONIA = hd.sr.CodedConcept("233604007", SCT, "Pneumonia")
PRESENT = hd.sr.CodedConcept("52101004", SCT, "Present")
ABSENT = hd.sr.CodedConcept("2667000", SCT, "Absent")
INDETERMINATE = hd.sr.CodedConcept("82334004", SCT, "Indeterminate")
OTHER = hd.sr.CodedConcept("74964007", SCT, "Other")
NOT_JUDGED = hd.sr.CodedConcept("NOT-JUDGED", DCM_SCHEME, "Not judged by the model")
OUT_OF_SCOPE = hd.sr.CodedConcept("OUT-OF-SCOPE", DCM_SCHEME, "Analysed although the gate refused the film")
GATE_REASON = hd.sr.CodedConcept("GATE-REASON", DCM_SCHEME, "Why the gate refused the film")
POPULATION_NOTE = hd.sr.CodedConcept("POPULATION-NOTE", DCM_SCHEME, "Population note")
SOURCE_FILE = hd.sr.CodedConcept("SOURCE-FILE", DCM_SCHEME, "Source picture file name")
DECIDED_AT = hd.sr.CodedConcept("DECIDED-AT", DCM_SCHEME, "Time of the reader's decision")
YES, NO = hd.sr.CodedConcept("373066001", SCT, "Yes"), hd.sr.CodedConcept("373067005", SCT, "No")
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
         "deg": codes.UCUM.Degree, "mean": hd.sr.CodedConcept("1", "UCUM", "no units"),
         "mm2": codes.UCUM.SquareMillimeter, "px2": hd.sr.CodedConcept("{pixels}2", "UCUM", "square pixels")}
OPPOSITE = str.maketrans("LRAPHF", "RLPAFH")
UTF8 = "ISO_IR 192"


@dataclass(frozen=True)
class Exported:
    sc: Path
    sr: Path


@dataclass(frozen=True)
class Identity:
    """Who and which examination a picture file (no DICOM header) is of, as the user gave it before the export."""

    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""


def identified(reading: Reading, identity: Identity) -> Reading:
    """A picture file's reading with the patient and accession the user gave: in the burned-in block and the
    exported headers alike. A DICOM film keeps its own."""
    if reading.record.format == "dicom":
        return reading
    metadata = replace(reading.record.metadata, patient_name=identity.patient_name.strip()[:64],
                       patient_id=identity.patient_id.strip()[:64], accession=identity.accession.strip()[:16])
    return replace(reading, record=replace(reading.record, metadata=metadata))


def source_dataset(reading: Reading) -> tuple[Dataset, bool]:
    """The film's header (True) or, for a picture file, a header for its own study (False) with the identity
    its reading carries (see `identified`)."""
    record = reading.record
    if record.format == "dicom":
        return pydicom.dcmread(record.path, stop_before_pixels=True, force=True), True
    m = record.metadata
    ds = Dataset()
    now = datetime.fromtimestamp(Path(record.path).stat().st_mtime)  # the same date at every export of the file
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = m.patient_name, m.patient_id, "", ""
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["xrayviewer picture study", file_sha256(record.path)])
    ds.StudyID, ds.AccessionNumber = "", m.accession
    ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = now.strftime("%Y%m%d"), now.strftime("%H%M%S"), ""
    ds.Modality = "OT"
    return ds, False


def export_dicom(reading: Reading, picture: np.ndarray, folder: Path) -> Exported:
    """Write `picture` (RGB, the exported view) as an SC and the reading as an SR into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    source, is_dicom = source_dataset(reading)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # highdicom's remarks on the source's own names
        sc = secondary_capture(source, picture, is_dicom, reading)
        sr = structured_report(reading, source if is_dicom else sc, sc)
    stem = Path(reading.record.path).stem
    paths = Exported(folder / f"{stem}.sc.dcm", folder / f"{stem}.sr.dcm")
    for dataset, path in ((sc, paths.sc), (sr, paths.sr)):
        _deidentification(dataset, source)
        temporary = path.with_name(f".{path.name}.tmp")
        dataset.save_as(temporary, enforce_file_format=True)
        temporary.replace(path)  # a crash leaves the old file or the new one, never half of one
    return paths


def _deidentification(dataset: Dataset, source: Dataset) -> None:
    """A de-identified source makes a de-identified export, and the method must then be stated (type 1C)."""
    if str(source.get("PatientIdentityRemoved", "")).upper() != "YES":
        return
    dataset.PatientIdentityRemoved = "YES"
    for keyword in ("DeidentificationMethod", "DeidentificationMethodCodeSequence"):
        if keyword in source:
            setattr(dataset, keyword, source[keyword].value)
    if "DeidentificationMethod" not in dataset and "DeidentificationMethodCodeSequence" not in dataset:
        dataset.DeidentificationMethod = "as the source film (its method is not stated)"


def secondary_capture(source: Dataset, picture: np.ndarray, is_dicom: bool, reading: Reading) -> hd.sc.SCImage:
    orientation = _orientation(source, reading.rotation, reading.flipped)
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
    sc.BurnedInAnnotation = "YES"  # the patient's name and ID are in the result block
    laterality = str(source.get("Laterality", "") or source.get("ImageLaterality", ""))
    if laterality in ("L", "R"):
        sc.Laterality = laterality
    elif not source.get("BodyPartExamined"):
        sc.Laterality = None  # type 2C: empty means unknown; left out for a known unpaired part (the chest)
    for keyword in ("BodyPartExamined", "StudyDescription"):
        if source.get(keyword):
            setattr(sc, keyword, source.get(keyword))
    if not is_dicom:
        sc.DerivationDescription = f"From the picture file {Path(reading.record.path).name}"[:1024]
    if is_dicom:
        reference = Dataset()
        reference.ReferencedSOPClassUID = source.SOPClassUID
        reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
        sc.SourceImageSequence = [reference]
        sc.DerivationDescription = "Film with an AI heatmap overlay, measurements and a result block"
    return sc


def _orientation(source: Dataset, rotation: int = 0, flipped: bool = False) -> tuple[str, str] | None:
    """The film's Patient Orientation (row, column directions) when it gives both, turned `rotation` degrees
    clockwise and mirrored left-right when `flipped`, as the SC shows the film."""
    value = list(source.get("PatientOrientation", []) or [])
    if len(value) != 2 or not all(value):
        return None
    row, column = str(value[0]), str(value[1])
    for _ in range(rotation // 90 % 4):  # clockwise: the old top is now on the right, the old right at the bottom
        row, column = column.translate(OPPOSITE), row
    return (row.translate(OPPOSITE) if flipped else row), column


def structured_report(reading: Reading, image: Dataset, sc: Dataset) -> hd.sr.ComprehensiveSR:
    """The measurement report; `image` is the dataset the regions are drawn on (the film, else the SC)."""
    person = None
    if reading.decision is not None:  # a person observer only when a reader decided
        person = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=_person_name(reading.decision.reader)))
    observers = hd.sr.ObservationContext(
        observer_person_context=person,
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=generate_uid(), name=MANUFACTURER, manufacturer_name=MANUFACTURER)))
    point = _region_point(reading, image is sc)
    groups = [_ai_group(reading), _reader_group(reading)]
    groups += [_mark_group(mark, image, i, reading, point) for i, mark in enumerate(reading.marks, 1)
               if mark.kind in ANNOTATIONS or (mark.kind in MEASURES and mark.value is not None
                                                 and np.isfinite(mark.value))]
    report = hd.sr.MeasurementReport(observation_context=observers, procedure_reported=CHEST_XRAY,
                                     imaging_measurements=[g for g in groups if g is not None])
    if image is sc:  # a picture file: its name is all there is to find it by
        report[0].ContentSequence.append(_text(SOURCE_FILE, Path(reading.record.path).name))
    evidence = [image] if image is sc else [image, sc]
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence, content=report[0], series_instance_uid=generate_uid(), series_number=9902,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        is_complete=True, is_final=False, is_verified=False)
    sr.SpecificCharacterSet = UTF8  # notes and names in any script
    sr.SeriesDescription = "AI result and reader decision (research use only)"
    sr.SoftwareVersions = __version__
    scheme = Dataset()
    scheme.CodingSchemeDesignator, scheme.CodingSchemeName = DCM_SCHEME, "XRay Viewer local codes"
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def _text(name: hd.sr.CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value[:1024],
                                 relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _person_name(name: str) -> str:
    """A free-text reader name as a DICOM person name: one component, marked by a trailing caret."""
    name = name.strip() or "Unnamed reader"
    return name if "^" in name else f"{name}^"


def _ai_group(reading: Reading) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """The model's result, or why there is none; out of scope and the gate's reasons; the population notes."""
    a = reading.analysis
    tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="AI result")
    if a is None:  # no model ran: the report says so rather than being empty
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, qualitative_evaluations=[hd.sr.QualitativeEvaluation(PNEUMONIA, NOT_JUDGED)])
        group[0].ContentSequence.append(_text(codes.DCM.Comment, "No model analysed this film"))
        return group
    parameters = [f"method={a.method}", f"threshold={a.threshold:.4f}"]
    if reading.model_sha256:
        parameters.append(f"model_sha256={reading.model_sha256}")
    algorithm = hd.sr.AlgorithmIdentification(name=a.model, version=__version__, parameters=parameters)
    measurements = []
    if a.probability is not None:
        measurements.append(hd.sr.Measurement(name=PROBABILITY, value=round(float(a.probability), 6),
                                              unit=UNITS["mean"], algorithm_id=algorithm))
    finding = NOT_JUDGED if a.label is None else PRESENT if a.label == "PNEUMONIA" else ABSENT
    evaluations = [hd.sr.QualitativeEvaluation(PNEUMONIA, finding)]
    if a.label is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(OUT_OF_SCOPE, YES if a.out_of_scope else NO))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, algorithm_id=algorithm, measurements=measurements or None,
        qualitative_evaluations=evaluations)
    for reason in a.refused:
        group[0].ContentSequence.append(_text(GATE_REASON, str(reason)))
    for note in a.notes:
        group[0].ContentSequence.append(_text(POPULATION_NOTE, str(note)))
    return group


def _reader_group(reading: Reading) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    d = reading.decision
    if d is None:
        return None
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="Reader decision"),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(PNEUMONIA, READER_CALL[d.decision])])
    try:
        # DT in the workstation's time with its offset; none when that is UTC (DCMTK 3.6.7 rejects +0000)
        decided = datetime.fromisoformat(d.decided_at).astimezone().strftime("%Y%m%d%H%M%S%z").removesuffix("+0000")
        group[0].ContentSequence.append(hd.sr.DateTimeContentItem(
            name=DECIDED_AT, value=decided, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    except ValueError:
        pass  # a store edited by hand: the decision stands without its time
    if d.note:
        group[0].ContentSequence.append(_text(codes.DCM.Comment, d.note))
    return group


def _region_point(reading: Reading, on_sc: bool):
    """Film (x, y) -> the region's image coordinates: the film's own, or, on the SC, where the turned and enlarged
    picture shows that point."""
    if not on_sc:
        return lambda x, y: (x, y)
    blank = np.zeros((reading.record.rows, reading.record.columns), np.uint8)
    return enlarged(*oriented(blank, reading.rotation, reading.flipped))[1]


def _mark_group(mark, image: Dataset, number: int, reading: Reading, point
                ) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """A measurement (length, angle, ROI with mean, SD and area) or an annotation (arrow, text) as a region on
    `image`."""
    points = list(mark.points)
    if mark.kind == "roi":
        (x0, y0), (x1, y1) = points
        points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    if mark.kind == "text":
        points = points[-1:]  # the text's anchor
    region = hd.sr.ImageRegion(graphic_type=ANNOTATIONS.get(mark.kind, "POLYLINE"),
                               graphic_data=np.array([point(x, y) for x, y in points], dtype=np.float64) + 0.5,
                               source_image=hd.sr.SourceImageForRegion(image.SOPClassUID, image.SOPInstanceUID))
    measurements = None if mark.kind in ANNOTATIONS else [hd.sr.Measurement(
        name=MEASURES[mark.kind], value=round(float(mark.value), 4), unit=UNITS.get(mark.unit, UNITS["mean"]))]
    if mark.kind == "roi":
        measurements += _roi_spread(reading, mark.points)
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{mark.kind} {number}"),
        referenced_region=region, measurements=measurements)
    words = mark.text if mark.kind == "text" else "arrow: its head is the last point" if mark.kind == "arrow" else ""
    if words:
        group[0].ContentSequence.append(_text(codes.DCM.Comment, words))
    return group


def _roi_spread(reading: Reading, points: list) -> list[hd.sr.Measurement]:
    """The SD and area of the ROI's rectangle, as the viewer shows them beside its mean."""
    (ax, ay), (bx, by) = points
    x0, x1 = sorted((int(round(ax)), int(round(bx))))
    y0, y1 = sorted((int(round(ay)), int(round(by))))
    x0, y0 = max(x0, 0), max(y0, 0)
    region = reading.record.pixels[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].astype(np.float64)
    if region.size == 0:
        return []
    if region.ndim == 3:
        region = region.mean(axis=2)
    spacing = reading.record.metadata.pixel_spacing
    area, unit = (region.size * spacing[0] * spacing[1], "mm2") if spacing else (float(region.size), "px2")
    return [hd.sr.Measurement(name=codes.SCT.StandardDeviation, value=round(float(region.std()), 4),
                              unit=UNITS["mean"]),
            hd.sr.Measurement(name=codes.SCT.Area, value=round(area, 4), unit=UNITS[unit])]
