"""Study scan: a folder or a DICOMDIR -> patients -> studies -> series -> instances, from headers only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.fileset import FileInstance, FileSet

from xrayviewer.core.dicom import as_int, parse, sop_class_name
from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.reader import SUPPORTED, kind_of

NO_PATIENT = "(plain images)"


@dataclass
class Instance:
    path: Path
    instance_number: int | None = None
    frames: int = 1
    modality: str = ""


@dataclass
class Series:
    uid: str
    number: int | None = None
    description: str = ""
    modality: str = ""
    instances: list[Instance] = field(default_factory=list)


@dataclass
class Study:
    uid: str
    date: str = ""
    description: str = ""
    series: dict[str, Series] = field(default_factory=dict)


@dataclass
class Patient:
    id: str
    name: str = ""
    studies: dict[str, Study] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    path: Path
    reason: str


@dataclass
class StudyTree:
    root: Path
    patients: dict[str, Patient] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def series(self) -> list[Series]:
        return [se for p in self.patients.values() for st in p.studies.values() for se in st.series.values()]

    def instances(self) -> list[Instance]:
        """Every image, in browser order."""
        return [inst for se in self.series() for inst in se.instances]

    def add(self, patient: Patient, study: Study, series: Series, instance: Instance) -> None:
        p = self.patients.setdefault(patient.id, patient)
        st = p.studies.setdefault(study.uid, study)
        st.series.setdefault(series.uid, series).instances.append(instance)

    def sort(self) -> None:
        """Patients by name, studies by date, series by number, instances by InstanceNumber then path."""
        self.patients = dict(sorted(self.patients.items(), key=lambda kv: (kv[0] == NO_PATIENT, kv[1].name, kv[0])))
        for p in self.patients.values():
            p.studies = dict(sorted(p.studies.items(), key=lambda kv: (kv[1].date, kv[1].description, kv[0])))
            for st in p.studies.values():
                st.series = dict(sorted(st.series.items(),
                                        key=lambda kv: (kv[1].number is None, kv[1].number or 0, kv[0])))
                for se in st.series.values():
                    se.instances.sort(key=lambda i: (i.instance_number is None, i.instance_number or 0, str(i.path)))


def image_paths(paths: list[str | Path]) -> Iterator[tuple[Path, str | None]]:
    """Files as given; folders and DICOMDIRs as their images (browser order). Yields (path, problem or None)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir() or path.name.upper() == "DICOMDIR":
            tree = scan(path)
            for instance in tree.instances():
                yield instance.path, None
            for problem in tree.problems:
                yield problem.path, problem.reason
        else:
            yield path, None


def scan(path: str | Path) -> StudyTree:
    """Scan a folder (recursively), a DICOMDIR, or a single file, reading headers only."""
    path = Path(path)
    tree = StudyTree(path)
    if path.is_dir() and (path / "DICOMDIR").is_file():
        path = path / "DICOMDIR"
    if path.is_file() and path.name.upper() == "DICOMDIR":
        _scan_dicomdir(path, tree)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            _scan_file(file, tree)
    elif path.is_file():
        _scan_file(path, tree)
    else:
        tree.problems.append(Problem(path, "no such file or folder"))
    tree.sort()
    return tree


def _scan_file(path: Path, tree: StudyTree) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError as exc:
        tree.problems.append(Problem(path, f"cannot read: {exc.strerror or exc}"))
        return
    kind = kind_of(head)
    if kind == "raster":
        folder = str(path.parent)
        tree.add(Patient(NO_PATIENT), Study(folder, description=path.parent.name),
                 Series(folder, description=path.parent.name), Instance(path))
    elif kind is None:
        tree.problems.append(Problem(path, "empty file" if not head else f"not {SUPPORTED}"))
    else:
        try:
            ds = parse(path, force=kind == "dicom-raw", headers_only=True)
        except XRayViewerError as exc:
            tree.problems.append(Problem(path, f"{exc.what}: {exc.why}"))
            return
        if "DirectoryRecordSequence" in ds:
            return  # a DICOMDIR inside a scanned folder: its files are scanned as files
        if "Rows" not in ds:  # image modules always carry Rows; reports, PR and KO objects do not
            tree.problems.append(Problem(path, f"no pixel data ({sop_class_name(ds)})"))
            return
        _add_dataset(tree, path, ds)


def _add_dataset(tree: StudyTree, path: Path, ds: Dataset) -> None:
    def text(keyword: str) -> str:
        return str(ds.get(keyword, "") or "")

    patient_id = text("PatientID") or text("PatientName") or "(no patient ID)"
    study_uid = text("StudyInstanceUID") or f"(study of {path.parent})"
    series_uid = text("SeriesInstanceUID") or f"(series of {path.parent})"
    tree.add(
        Patient(patient_id, text("PatientName")),
        Study(study_uid, text("StudyDate"), text("StudyDescription")),
        Series(series_uid, as_int(ds.get("SeriesNumber")), text("SeriesDescription"), text("Modality")),
        Instance(path, as_int(ds.get("InstanceNumber")), as_int(ds.get("NumberOfFrames")) or 1, text("Modality")),
    )


def _scan_dicomdir(path: Path, tree: StudyTree) -> None:
    try:
        fileset = FileSet(parse(path))
    except XRayViewerError as exc:
        tree.problems.append(Problem(path, f"{exc.what}: {exc.why}"))
        return
    except Exception as exc:  # noqa: BLE001 - a malformed directory record structure
        tree.problems.append(Problem(path, f"broken DICOMDIR: {exc}"))
        return
    for record in fileset:
        target = Path(record.path)
        if not target.is_file():
            tree.problems.append(Problem(target, "listed in the DICOMDIR but missing on disk"))
        else:
            _add_dataset(tree, target, _RecordView(record))


class _RecordView:
    """A DICOMDIR record, read like a data set: the attribute from the nearest level that has it."""

    def __init__(self, record: FileInstance) -> None:
        self.record = record

    def get(self, keyword: str, default=None):
        return getattr(self.record, keyword, default) if keyword in self.record else default
