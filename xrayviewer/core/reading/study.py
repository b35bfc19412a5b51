"""Study scan: a folder or a DICOMDIR -> patients -> studies -> series -> instances, from headers only."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.reading.dicom import as_int, number, parse, sop_class_name, text, value
from xrayviewer.core.reading.limits import open_regular
from xrayviewer.core.reading.reader import HEAD_BYTES, kind_of, not_an_image

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
    skipped: list[Path] = field(default_factory=list)  # files met in a folder whose content is not an image

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


def image_paths(paths: list[str | Path], skipped: Callable[[Path, int], None] = lambda folder, count: None
                ) -> Iterator[tuple[Path, str | None]]:
    """Files as given; folders and DICOMDIRs as their images (browser order). Yields (path, problem or None); the
    files of a folder that are not images (notes.txt, Thumbs.db) are left out and counted: `skipped(folder, n)`."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir() or path.name.upper() == "DICOMDIR":
            tree = scan(path, skip_non_images=True)
            if tree.skipped:
                skipped(path, len(tree.skipped))
            for instance in tree.instances():
                yield instance.path, None
            for problem in tree.problems:
                yield problem.path, problem.reason
        else:
            yield path, None


def first_image(paths: list[str | Path]) -> Path | None:
    """The first image file under `paths` (depth first, in name order), found without scanning the rest: a folder
    of any size shows its first film at once. None when there is none or a DICOMDIR is given (its records decide)."""
    for raw in paths:
        path = Path(raw)
        if path.name.upper() == "DICOMDIR" or (path.is_dir() and (path / "DICOMDIR").is_file()):
            return None
        if path.is_file():
            return path
        found = _first_image_below(path) if path.is_dir() else None
        if found is not None:
            return found
    return None


def _first_image_below(folder: Path) -> Path | None:
    """Depth first, folders and files together in name order; links to folders are not followed."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return None
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            found = _first_image_below(path)
            if found is not None:
                return found
        elif _is_image(path):
            return path
    return None


def _is_image(path: Path) -> bool:
    try:
        file, _ = open_regular(path)
        with file:
            return kind_of(file.read(HEAD_BYTES)) is not None
    except (OSError, XRayViewerError):
        return False


def scan(path: str | Path, skip_non_images: bool = False) -> StudyTree:
    """Scan a folder (recursively), a DICOMDIR, or a single file, reading headers only.

    Nothing in the folder stops the scan: each file, folder or DICOMDIR record that cannot be used becomes one
    entry in `problems` and the rest are listed. With `skip_non_images`, a folder's files whose content is not an
    image (decided as the reader decides: DICOM preamble or first tag, PNG/JPEG/TIFF/BMP signature) go to
    `skipped` instead; a file given by name that is not an image is always a problem.
    """
    path = Path(path)
    tree = StudyTree(path)
    if path.is_dir() and (path / "DICOMDIR").is_file():
        path = path / "DICOMDIR"
    if path.is_file() and path.name.upper() == "DICOMDIR":
        _scan_dicomdir(path, tree)
    elif path.is_dir():
        for file in _files_under(path, tree):
            _scan_file(file, tree, skip_non_images)
    elif path.exists():
        _scan_file(path, tree)
    else:
        tree.problems.append(Problem(path, "no such file or folder"))
    tree.sort()
    return tree


def _files_under(folder: Path, tree: StudyTree) -> list[Path]:
    """Every file below `folder` in name order; symbolic links to folders are not followed (they can loop)."""
    files: list[Path] = []

    def unreadable(exc: OSError) -> None:
        tree.problems.append(Problem(Path(exc.filename or folder), f"cannot read folder: {exc.strerror or exc}"))

    for root, dirs, names in os.walk(folder, onerror=unreadable):
        dirs.sort()
        files.extend(Path(root, name) for name in names)
    return sorted(files)


def _scan_file(path: Path, tree: StudyTree, skip_non_image: bool = False) -> None:
    """Add one file to the tree, or one problem (`skip_non_image`: a non-empty file that is not an image goes to
    `skipped`); nothing it holds escapes as an exception."""
    try:
        file, _ = open_regular(path)
        with file:
            head = file.read(HEAD_BYTES)
        kind = kind_of(head)
        if kind == "raster":
            folder = str(path.parent)
            tree.add(Patient(NO_PATIENT), Study(folder, description=path.parent.name),
                     Series(folder, description=path.parent.name), Instance(path))
        elif kind is None and head and skip_non_image:
            tree.skipped.append(path)
        elif kind is None:
            raise not_an_image(path, head)
        else:
            ds = parse(path, force=kind == "dicom-raw", headers_only=True)
            if "DirectoryRecordSequence" in ds:
                return  # a DICOMDIR inside a scanned folder: its files are scanned as files
            if "Rows" not in ds:  # image modules always carry Rows; reports, PR and KO objects do not
                tree.problems.append(Problem(path, f"no pixel data ({sop_class_name(ds)})"))
                return
            _add_dataset(tree, path, ds)
    except XRayViewerError as exc:
        tree.problems.append(Problem(path, exc.reason))
    except OSError as exc:
        tree.problems.append(Problem(path, f"cannot read: {exc.strerror or exc}"))


def _add_dataset(tree: StudyTree, path: Path, ds: Dataset | _RecordView) -> None:
    patient_id = text(ds, "PatientID") or text(ds, "PatientName") or "(no patient ID)"
    study_uid = text(ds, "StudyInstanceUID") or f"(study of {path.parent})"
    series_uid = text(ds, "SeriesInstanceUID") or f"(series of {path.parent})"
    frames = as_int(number(ds, "NumberOfFrames"), 1)
    tree.add(
        Patient(patient_id, text(ds, "PatientName")),
        Study(study_uid, text(ds, "StudyDate"), text(ds, "StudyDescription")),
        Series(series_uid, as_int(number(ds, "SeriesNumber")), text(ds, "SeriesDescription"), text(ds, "Modality")),
        Instance(path, as_int(number(ds, "InstanceNumber")), max(frames, 1), text(ds, "Modality")),
    )


def _scan_dicomdir(path: Path, tree: StudyTree) -> None:
    """List the images a DICOMDIR's records point to; loops, dangling offsets and bad records become problems."""
    try:
        ds = parse(path)
        records = list(value(ds, "DirectoryRecordSequence", []))
    except XRayViewerError as exc:
        tree.problems.append(Problem(path, exc.reason))
        return
    for record, ancestors, problem in _walk_records(ds, records):
        if problem:
            tree.problems.append(Problem(path, f"broken DICOMDIR: {problem}; the records it leads to are skipped"))
            continue
        target, problem = _referenced_file(path.parent, record)
        if problem:
            tree.problems.append(Problem(target or path, problem))
        else:
            _add_dataset(tree, target, _RecordView(record, ancestors))


def _walk_records(ds: Dataset, records: list[Dataset]) -> Iterator[tuple[Dataset | None, list[Dataset], str]]:
    """(record, its ancestors, "") for each record that references a file, following the DICOMDIR's offsets
    from the root; (None, [], problem) for an offset that points nowhere or back to a record already seen."""
    by_offset = {getattr(r, "seq_item_tell", None): r for r in records}
    root = as_int(number(ds, "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity"), 0)
    if not root and records:  # no offsets (some writers): the records in file order, flat
        for record in records:
            if "ReferencedFileID" in record:
                yield record, [], ""
        return
    seen: set[int] = set()
    stack: list[tuple[int, list[Dataset]]] = [(root, [])]
    while stack:
        offset, ancestors = stack.pop()
        while offset:
            record = by_offset.get(offset)
            if offset in seen or record is None:
                yield None, [], (f"its records loop back to the record at byte {offset}" if offset in seen
                                 else f"a record points to byte {offset}, where no record starts")
                break
            seen.add(offset)
            if "ReferencedFileID" in record:
                yield record, ancestors, ""
            lower = as_int(number(record, "OffsetOfReferencedLowerLevelDirectoryEntity"), 0)
            if lower:
                stack.append((lower, ancestors + [record]))
            offset = as_int(number(record, "OffsetOfTheNextDirectoryRecord"), 0)


def _referenced_file(folder: Path, record: Dataset) -> tuple[Path | None, str]:
    """The file a record's ReferencedFileID names, inside the DICOMDIR's folder; (path, problem or "")."""
    parts = value(record, "ReferencedFileID", "")
    parts = [parts] if isinstance(parts, str) else [str(p) for p in parts]
    parts = [p.strip() for p in parts]
    if not parts or any(p in ("", ".", "..") or not p.isprintable() or any(c in p for c in "/\\:") for p in parts):
        shown = "/".join(parts)[:80]
        return None, f"a DICOMDIR record names the file {shown!r}, which is not a file name inside its folder"
    target = folder.joinpath(*parts)
    if not target.is_file():
        return target, "listed in the DICOMDIR but missing on disk"
    return target, ""


class _RecordView:
    """A DICOMDIR record, read like a data set: the attribute from the nearest level that has it."""

    def __init__(self, record: Dataset, ancestors: list[Dataset]) -> None:
        self.levels = [record, *reversed(ancestors)]

    def __contains__(self, keyword: str) -> bool:
        return any(keyword in level for level in self.levels)

    def get(self, keyword: str, default=None):
        return next((value(level, keyword) for level in self.levels if keyword in level), default)
