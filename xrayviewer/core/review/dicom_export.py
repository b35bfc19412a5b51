"""DICOM export through highdicom: a Comprehensive SR (TID 1500), a Parametric Map of the heatmap and a Secondary
Capture of the exported view.

All join the source film's study (same patient and Study Instance UID, a series each), so a PACS files them beside
the film. `derived_objects` makes what the AI node sends back for a film; `export_dicom` writes the viewer's export.

- The SR is a TID 1500 Measurement Report: an image library entry for the film; the AI result as a measurement
  group whose region (SCOORD, on the film's pixels) outlines the strongest evidence of the heatmap, with the
  probability (DCM 122157 Probability) and the operating threshold (DCM 122411 Threshold Value) as NUM items, the
  finding (SCT Pneumonia: present or absent), the algorithm (name, version, model file hash) and the gate's reasons
  and population notes; a group without a region references the film as an IMAGE item. A refused film's SR says why
  and has no heatmap, and its procedure is "Imaging procedure", never "Plain chest X-ray". The reader's decision
  and note and each length, angle and ROI measurement follow, as today. Codes of the XRay Viewer's own scheme
  (99XRAYVIEWER) are declared in the Coding Scheme Identification Sequence.
- The Parametric Map is the float heatmap on the film's pixel grid (see parametric_map.py).
- The SC is the view with the heatmap, marks and a result block, for viewers that show neither.

UIDs are made from what each object depends on (derived_uids.py): exporting an unchanged result again gives the
same objects, and a later reader decision gives a new SR that names its predecessor (Predecessor Documents). A film
whose UIDs are not valid is refused (nothing is written); attributes a film lacks that the objects must carry
(Type 2: birth date, sex, accession...) are written empty.
A film that is not DICOM has no study to join: the objects then start a study of their own, one per picture file
(its UID made from the file's content), the SR names the file, its regions refer to the SC, in the SC's (turned,
enlarged) coordinates, and there is no Parametric Map (no DICOM film to lay it on).
The SC says the patient's name and ID are burned in, keeps the source's laterality, body part and study
description, and its Patient Orientation follows the rotation and flip shown. The SR's text is UTF-8 (ISO_IR 192);
it names a person observer only when a reader decided. A reader's decision makes the SR VERIFIED, the reader its
verifying observer (at the decision's time); without one it is UNVERIFIED, and the SR (a comment in the AI group, its
series description), the SC's comments and its burned-in block say that the AI result is not verified by a reader.
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

from xrayviewer import __version__
from xrayviewer.core.analysis.overlay import OverlayStyle, cam_overlay
from xrayviewer.core.errors import OutputError
from xrayviewer.core.reading.digest import file_sha256
from xrayviewer.core.reading.display import to_display
from xrayviewer.core.review.derived_uids import check_source_uids, derived_uid
from xrayviewer.core.review.pacs import AI_OVERLAY_SERIES
from xrayviewer.core.review.parametric_map import parametric_map, pixel_spacing, strongest_outline
from xrayviewer.core.review.report_image import Reading, enlarged, oriented, reading_picture
from xrayviewer.core.review.store import Decision

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
UNVERIFIED = "AI result, not verified by a reader: no reader decision was recorded for this film"
YES, NO = hd.sr.CodedConcept("373066001", SCT, "Yes"), hd.sr.CodedConcept("373067005", SCT, "No")
READER_CALL = {"pneumonia": PRESENT, "normal": ABSENT, "uncertain": INDETERMINATE, "other": OTHER}
PROBABILITY = hd.sr.CodedConcept("122157", "DCM", "Probability")
THRESHOLD = hd.sr.CodedConcept("122411", "DCM", "Threshold Value")
CHEST_XRAY = hd.sr.CodedConcept("399208008", SCT, "Plain chest X-ray")
IMAGING = hd.sr.CodedConcept("363679005", SCT, "Imaging procedure")
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
PROJECTION, CROSS_SECTIONAL = ("CR", "DX", "IO", "MG", "PX", "RF", "RG", "XA"), ("CT", "MR", "PT")
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
         "StudyTime", "ReferringPhysicianName")  # copied into every object: written empty when the film lacks one


@dataclass(frozen=True)
class Exported:
    """The files `export_dicom` wrote."""

    sc: Path
    sr: Path
    pm: Path | None = None  # the heatmap as a Parametric Map: a DICOM film with a heatmap only


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
    its reading carries (see `identified`). A film whose UIDs are not valid is refused (XRayViewerError); the
    Type 2 attributes it lacks are added empty."""
    record = reading.record
    if record.format == "dicom":
        ds = pydicom.dcmread(record.path, stop_before_pixels=True, force=True)
        check_source_uids(ds, record.path)
        for keyword in TYPE2:
            if keyword not in ds:
                setattr(ds, keyword, "")
        return ds, True
    m = record.metadata
    ds = Dataset()
    now = datetime.fromtimestamp(Path(record.path).stat().st_mtime)  # the same date at every export of the file
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = m.patient_name, m.patient_id, "", ""
    ds.StudyInstanceUID = derived_uid("xrayviewer picture study", file_sha256(record.path))
    ds.StudyID, ds.AccessionNumber = "", m.accession
    ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = now.strftime("%Y%m%d"), now.strftime("%H%M%S"), ""
    ds.Modality = "OT"
    return ds, False


def film_picture(reading: Reading) -> tuple[Reading, np.ndarray]:
    """The SC's picture of a reading made without a viewer (the AI node, the export command): the film at its
    default window with the result's heatmap in the default style, its marks and the result block; the reading
    then names the heatmap's colours (for the colour bar)."""
    cam = reading.analysis.cam if reading.analysis is not None else None
    if cam is not None and reading.colormap is None:
        reading = replace(reading, colormap=OverlayStyle().colormap)
    return reading, reading_picture(cam_overlay(to_display(reading.record), cam, OverlayStyle()), reading)


def derived_objects(reading: Reading, previous: Decision | None = None) -> list[Dataset]:
    """What the AI node sends back to the PACS for one film, in the film's study: [SR, Parametric Map, SC] for an
    analysed DICOM film ([SR, SC] when its heatmap is empty or it has none), [SR] for a DICOM film the gate
    refused (the SR says why; no heatmap, no picture). A picture file (no DICOM header) gets [SR, SC] in a study of
    its own.

    `reading`: `Reading(read_image(path), analysis, decision, marks, model_sha256=model.digest)`, the analysis
    with its heatmap (`engine.analyze(model, to_display(record), record=record)`, method not None).
    `previous`: the reader's decision before `reading.decision`, whose SR the new one names as its predecessor
    (None: the SR made without a decision). The objects' UIDs depend only on the film, the model file, the result,
    the decision and the marks: calling again with the same ones gives the same UIDs. Raises XRayViewerError for
    a film whose UIDs are not valid DICOM UIDs.
    """
    analysed = reading.analysis is not None and reading.analysis.label is not None
    pictured = analysed or reading.record.format != "dicom"  # a picture file's SR refers to its SC
    with_picture, picture = film_picture(reading) if pictured else (reading, None)
    sr, pm, sc = _objects(with_picture, picture, previous)
    return [o for o in (sr, pm, sc) if o is not None]


def export_dicom(reading: Reading, picture: np.ndarray, folder: Path, previous: Decision | None = None
                 ) -> Exported:
    """Write `picture` (RGB, the exported view) as an SC, the heatmap as a Parametric Map (when there is one) and
    the reading as an SR into `folder`, each atomically. An unwritable folder is an OutputError (one line)."""
    sr, pm, sc = _objects(reading, picture, previous)
    stem = Path(reading.record.path).stem
    paths = Exported(folder / f"{stem}.sc.dcm", folder / f"{stem}.sr.dcm", folder / f"{stem}.pm.dcm" if pm else None)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for dataset, path in ((sc, paths.sc), (sr, paths.sr), (pm, paths.pm)):
            if dataset is not None:
                save_atomically(dataset, path)
    except OSError as exc:
        where = Path(exc.filename).parent if exc.filename else folder
        raise OutputError(where if where.name else folder, "cannot write the DICOM export",
                          exc.strerror or type(exc).__name__, "Choose a folder you can write to.") from None
    return paths


def save_atomically(dataset: Dataset, path: Path) -> None:
    """`dataset` as a DICOM file at `path`: a crash leaves the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        dataset.save_as(temporary, enforce_file_format=True)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def _objects(reading: Reading, picture: np.ndarray | None, previous: Decision | None
             ) -> tuple[Dataset, Dataset | None, Dataset | None]:
    """(SR, Parametric Map or None, SC or None when there is no picture) of a reading."""
    source, is_dicom = source_dataset(reading)
    keys = _Keys(reading, source, is_dicom)
    heat = _film_heat(reading)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # highdicom's remarks on the source's own names
        sc = None if picture is None else secondary_capture(source, picture, is_dicom, reading, keys)
        pm = None if heat is None or not is_dicom else parametric_map(
            source, heat, keys.uid("pm series"), keys.uid("pm", keys.result), reading.analysis.model,
            reading.model_sha256, reading.analysis.method, reading.analysis.target)
        if pm is not None:
            if source.get("BodyPartExamined"):
                pm.BodyPartExamined = source.BodyPartExamined
            _laterality(pm, source)
        sr = structured_report(reading, source if is_dicom else sc, [o for o in (pm, sc) if o is not None], keys,
                               strongest_outline(heat) if heat is not None else None, previous)
    for dataset in (sr, pm, sc):
        if dataset is not None:
            _deidentification(dataset, source)
    return sr, pm, sc


class _Keys:
    """What each derived object depends on, and the UIDs made from it."""

    def __init__(self, reading: Reading, source: Dataset, is_dicom: bool) -> None:
        self.source = str(source.SOPInstanceUID) if is_dicom else str(source.StudyInstanceUID)
        self.model = reading.model_sha256
        a = reading.analysis
        self.result = None if a is None else [
            a.model, a.method, a.target, a.threshold, None if a.probability is None else round(float(a.probability), 6),
            a.label, [str(r) for r in a.refused], [str(n) for n in a.notes], a.out_of_scope]
        self.reader = self.reading_key(reading)

    @staticmethod
    def reading_key(reading: Reading) -> list:
        d = reading.decision
        return [None if d is None else [d.decision, d.note, d.reader, d.decided_at],
                [[m.kind, [list(p) for p in m.points], m.text, m.value, m.unit] for m in reading.marks]]

    def uid(self, kind: str, *parts: object) -> str:
        return derived_uid(kind, self.source, self.model, *parts)


def _film_heat(reading: Reading) -> np.ndarray | None:
    """The result's heatmap (float, 0..1) on the film's own pixel grid, when it has one with some evidence."""
    a = reading.analysis
    if a is None or a.cam is None or a.cam.empty or reading.record.frames != 1:
        return None
    heat = a.cam.map
    return heat if heat.shape == reading.record.pixels.shape[:2] else None


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


def _laterality(dataset: Dataset, source: Dataset) -> None:
    """The source's laterality; type 2C: empty means unknown, left out for a known unpaired part (the chest)."""
    laterality = str(source.get("Laterality", "") or source.get("ImageLaterality", ""))
    if laterality in ("L", "R"):
        dataset.Laterality = laterality
    elif not source.get("BodyPartExamined"):
        dataset.Laterality = None
    elif "Laterality" in dataset:
        del dataset.Laterality


def secondary_capture(source: Dataset, picture: np.ndarray, is_dicom: bool, reading: Reading, keys: _Keys
                      ) -> hd.sc.SCImage:
    orientation = _orientation(source, reading.rotation, reading.flipped)
    rgb = np.ascontiguousarray(picture if picture.ndim == 3 else np.stack([picture] * 3, axis=-1), np.uint8)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=keys.uid("sc series"), series_number=9901,
        sop_instance_uid=keys.uid("sc", keys.result, keys.reader, reading.rotation, reading.flipped,
                                  reading.colormap),
        instance_number=1, manufacturer=MANUFACTURER,
        patient_orientation=orientation or ("L", "F"), transfer_syntax_uid=pydicom.uid.ExplicitVRLittleEndian)
    if orientation is None:
        sc.PatientOrientation = None  # type 2: present and empty, "unknown", rather than a guess
    sc.SeriesDescription = AI_OVERLAY_SERIES
    sc.ImageComments = "XRay Viewer overlay: heatmap, measurements and result; research use only" + (
        "; AI result, not verified by a reader" if reading.decision is None and reading.analysis is not None else "")
    sc.SoftwareVersions = __version__
    sc.BurnedInAnnotation = "YES"  # the patient's name and ID are in the result block
    _laterality(sc, source)
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


def structured_report(reading: Reading, image: Dataset, derived: list[Dataset], keys: _Keys,
                      outline: np.ndarray | None = None, previous: Decision | None = None) -> hd.sr.ComprehensiveSR:
    """The measurement report; `image` is the dataset the regions are drawn on (the film, else the SC), `derived`
    the Parametric Map and SC made beside it (listed as evidence), `outline` the strongest evidence's outline on
    the film's pixels."""
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
                uid=derived_uid("device", MANUFACTURER, keys.model), name=MANUFACTURER,
                manufacturer_name=MANUFACTURER)))
    on_sc = any(image is d for d in derived)
    point = _region_point(reading, on_sc)
    if outline is not None:  # pixel centres (+0.5) of the film -> of the region's image
        outline = np.array([point(x, y) for x, y in outline - 0.5], np.float64) + 0.5
    groups = [_ai_group(reading, image, keys, outline), _reader_group(reading, keys)]
    groups += [_mark_group(mark, image, i, reading, point, keys) for i, mark in enumerate(reading.marks, 1)
               if mark.kind in ANNOTATIONS or (mark.kind in MEASURES and mark.value is not None
                                                 and np.isfinite(mark.value))]
    a = reading.analysis
    chest = a is not None and not a.refused  # the gate took it for a chest film
    report = hd.sr.MeasurementReport(observation_context=observers, procedure_reported=CHEST_XRAY if chest else IMAGING,
                                     imaging_measurements=[g for g in groups if g is not None],
                                     referenced_images=[_library_view(image)])
    if on_sc:  # a picture file: its name is all there is to find it by
        report[0].ContentSequence.append(_text(SOURCE_FILE, Path(reading.record.path).name))
    predecessors = None
    if reading.decision is not None:
        before = replace(reading, decision=previous, marks=reading.marks if previous is not None else ())
        predecessor = Dataset()
        for keyword in ("PatientID", "PatientName", "StudyInstanceUID"):
            setattr(predecessor, keyword, image.get(keyword))
        predecessor.SeriesInstanceUID = keys.uid("sr series")
        predecessor.SOPInstanceUID = keys.uid("sr", keys.result, *_Keys.reading_key(before))
        predecessor.SOPClassUID = pydicom.uid.ComprehensiveSRStorage
        predecessors = [predecessor]
    evidence = [image] + [d for d in derived if d is not image]
    d = reading.decision
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence, content=report[0], series_instance_uid=keys.uid("sr series"), series_number=9902,
        sop_instance_uid=keys.uid("sr", keys.result, *keys.reader), instance_number=1, manufacturer=MANUFACTURER,
        is_complete=True, is_final=False, is_verified=d is not None,
        verifying_observer_name=_person_name(d.reader) if d else None,
        verifying_organization=str(image.get("InstitutionName") or "Not recorded") if d else None,
        previous_versions=predecessors)
    if d is not None and (decided := _dicom_datetime(d.decided_at)):
        sr.VerifyingObserverSequence[0].VerificationDateTime = decided  # the reader verified it by deciding
    sr.SpecificCharacterSet = UTF8  # notes and names in any script
    sr.SeriesDescription = ("AI result and reader decision" if d else "AI result, not verified by a reader") + \
        " (research use only)"
    sr.SoftwareVersions = __version__
    scheme = Dataset()
    scheme.CodingSchemeDesignator, scheme.CodingSchemeName = DCM_SCHEME, "XRay Viewer local codes"
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def _library_view(image: Dataset) -> Dataset:
    """What the image library says of `image`: its class, instance, size and frame of reference, and its modality's
    descriptors (orientation, spacing, position) only when the image gives them all (highdicom needs them all)."""
    view = Dataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID", "Rows", "Columns", "FrameOfReferenceUID", "StudyInstanceUID",
                    "SeriesInstanceUID"):
        if keyword in image:
            setattr(view, keyword, image.get(keyword))
    view.Modality = ""
    orientation, spacing = list(image.get("PatientOrientation") or []), pixel_spacing(image)
    if image.get("Modality") in PROJECTION and len(orientation) == 2 and all(orientation) and spacing:
        view.Modality, view.PatientOrientation, view.ImagerPixelSpacing = image.Modality, orientation, list(spacing)
    elif image.get("Modality") in CROSS_SECTIONAL and all(k in image for k in ("PixelSpacing", "ImagePositionPatient",
                                                                                "ImageOrientationPatient")):
        view.Modality = image.Modality
        for keyword in ("PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient", "SliceThickness"):
            if keyword in image:
                setattr(view, keyword, image.get(keyword))
    return view


def _text(name: hd.sr.CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value[:1024],
                                 relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _person_name(name: str) -> str:
    """A free-text reader name as a DICOM person name: one component, marked by a trailing caret."""
    name = name.strip() or "Unnamed reader"
    return name if "^" in name else f"{name}^"


def _ai_group(reading: Reading, image: Dataset, keys: _Keys, outline: np.ndarray | None):
    """The model's result, or why there is none: with a region outlining the strongest evidence (TID 1410) when
    there is a heatmap on the film, else referencing the image (TID 1501); the probability and threshold, the
    finding, out of scope and the gate's reasons; the population notes."""
    a = reading.analysis
    tracking = hd.sr.TrackingIdentifier(uid=keys.uid("ai result tracking"), identifier="AI result")
    source = [hd.sr.SourceImageForMeasurementGroup(image.SOPClassUID, image.SOPInstanceUID)]
    if a is None:  # no model ran: the report says so rather than being empty
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, source_images=source,
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(PNEUMONIA, NOT_JUDGED)])
        group[0].ContentSequence.append(_text(codes.DCM.Comment, "No model analysed this film"))
        return group
    parameters = [f"method={a.method}", f"target={a.target}", f"threshold={a.threshold:.4f}"]
    if reading.model_sha256:
        parameters.append(f"model_sha256={reading.model_sha256}")
    algorithm = hd.sr.AlgorithmIdentification(name=a.model, version=__version__, parameters=parameters)
    measurements = []
    if a.probability is not None:
        measurements.append(hd.sr.Measurement(name=PROBABILITY, value=round(float(a.probability), 6),
                                              unit=UNITS["mean"]))
        measurements.append(hd.sr.Measurement(name=THRESHOLD, value=round(float(a.threshold), 6),
                                              unit=UNITS["mean"]))
    finding = NOT_JUDGED if a.label is None else PRESENT if a.label == "PNEUMONIA" else ABSENT
    evaluations = [hd.sr.QualitativeEvaluation(PNEUMONIA, finding)]
    if a.label is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(OUT_OF_SCOPE, YES if a.out_of_scope else NO))
    common = dict(tracking_identifier=tracking, algorithm_id=algorithm, measurements=measurements or None,
                  qualitative_evaluations=evaluations, finding_type=PNEUMONIA if a.label is not None else None)
    if outline is not None:
        region = hd.sr.ImageRegion(graphic_type="POLYLINE", graphic_data=outline,
                                   source_image=hd.sr.SourceImageForRegion(image.SOPClassUID, image.SOPInstanceUID))
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=region, **common)
        group[0].ContentSequence.append(_text(codes.DCM.Comment, f"The region outlines the strongest {a.method} "
                                              f"evidence for {a.target}: where the heatmap reaches half its peak"))
    else:
        group = hd.sr.MeasurementsAndQualitativeEvaluations(source_images=source, **common)
    for reason in a.refused:
        group[0].ContentSequence.append(_text(GATE_REASON, str(reason)))
    for note in a.notes:
        group[0].ContentSequence.append(_text(POPULATION_NOTE, str(note)))
    if reading.decision is None:
        group[0].ContentSequence.append(_text(codes.DCM.Comment, UNVERIFIED))
    return group


def _reader_group(reading: Reading, keys: _Keys) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    d = reading.decision
    if d is None:
        return None
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=keys.uid("reader decision tracking"),
                                                     identifier="Reader decision"),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(PNEUMONIA, READER_CALL[d.decision])])
    decided = _dicom_datetime(d.decided_at)
    if decided:  # none from a store edited by hand: the decision stands without its time
        group[0].ContentSequence.append(hd.sr.DateTimeContentItem(
            name=DECIDED_AT, value=decided, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    if d.note:
        group[0].ContentSequence.append(_text(codes.DCM.Comment, d.note))
    return group


def _dicom_datetime(iso: str) -> str:
    """An ISO time as a DICOM DT in the workstation's time with its offset; none when that is UTC (DCMTK 3.6.7
    rejects +0000); "" when it is not a time."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y%m%d%H%M%S%z").removesuffix("+0000")
    except ValueError:
        return ""


def _region_point(reading: Reading, on_sc: bool):
    """Film (x, y) -> the region's image coordinates: the film's own, or, on the SC, where the turned and enlarged
    picture shows that point."""
    if not on_sc:
        return lambda x, y: (x, y)
    blank = np.zeros((reading.record.rows, reading.record.columns), np.uint8)
    return enlarged(*oriented(blank, reading.rotation, reading.flipped))[1]


def _mark_group(mark, image: Dataset, number: int, reading: Reading, point, keys: _Keys
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
        tracking_identifier=hd.sr.TrackingIdentifier(uid=keys.uid("mark tracking", number, mark.kind),
                                                     identifier=f"{mark.kind} {number}"),
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
