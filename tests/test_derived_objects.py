"""What the AI node sends back for a film (`derived_objects`): on a real chest CR (pydicom-data) and a real chest film
wrapped in a DICOM header, an SR (TID 1500: image library, IMAGE reference, the strongest evidence as a SCOORD on
the film's pixels, probability and threshold as standard NUM codes), a Parametric Map (the float heatmap on the
film's pixel grid) and an SC, each passing dciodvfy with no error, dcentvfy with no error across the set, dsrdump
showing the IMAGE and SCOORD items and highdicom reading them back; UIDs that repeat for an unchanged result and a
later decision's SR naming its predecessor; a refused CT gets an SR only, saying why; a film lacking Type 2
attributes exports them empty; a film with invalid UIDs is refused; a picture file gets an SR and an SC."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import cv2
import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import ComprehensiveSRStorage, ParametricMapStorage, SecondaryCaptureImageStorage
from test_dicom_export_valid import content, texts, validate
from test_pacs import data_home, orthanc  # noqa: F401 - fixtures: a real Orthanc, a command's own data folder

from xrayviewer.core import read_image, to_display
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.dicom_export import PNEUMONIA, derived_objects, export_dicom, film_picture
from xrayviewer.core.review.report_image import Reading
from xrayviewer.core.review.store import Decision

DCENTVFY, DSRDUMP = shutil.which("dcentvfy"), shutil.which("dsrdump")
DECISION = Decision("pneumonia", "right lower zone", "Dr Test", "2026-11-23T19:00:00+00:00", {})


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine("cpu")


def analysed(engine: Engine, path: Path) -> Reading:
    """`path` analysed by the shipped MobileNetV2 with its default heatmap, as the AI node analyses a film."""
    record = read_image(path)
    model = engine.model("mobilenetv2")
    return Reading(record, engine.analyze(model, to_display(record), record=record), model_sha256=model.digest)


def kermany_as_dicom(kermany: Path, folder: Path) -> Path:
    """A real chest film (Kermany, PNEUMONIA) in a DX header of its own: no spacing, no orientation, no frame of
    reference, as many archived films are."""
    film = sorted((kermany / "PNEUMONIA").iterdir())[0]
    pixels = cv2.imread(str(film), cv2.IMREAD_GRAYSCALE)
    ds = pydicom.Dataset()
    ds.SOPClassUID = pydicom.uid.DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (pydicom.uid.generate_uid() for _ in range(3))
    ds.Modality, ds.BodyPartExamined, ds.PatientID, ds.PatientName = "DX", "CHEST", "K-1", "KERMANY^FILM"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{film.stem}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module", params=["pydicom-data chest CR", "Kermany chest film as DX"])
def film(request, engine, dicom_data, tmp_path_factory) -> Reading:
    if request.param.startswith("pydicom"):
        return analysed(engine, dicom_data / "RG1_UNCR.dcm")
    return analysed(engine, kermany_as_dicom(request.getfixturevalue("kermany"), tmp_path_factory.mktemp("dx")))


def saved(datasets: list[pydicom.Dataset], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(datasets):
        paths.append(folder / f"{i}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def entities_agree(paths: list[Path]) -> None:
    """dcentvfy (dicom3tools): the patient, study and series entities of `paths` agree (no Error line)."""
    if DCENTVFY is None:
        pytest.skip("dcentvfy not found (Debian package dicom3tools)")
    out = subprocess.run([DCENTVFY, *map(str, paths)], capture_output=True, text=True, timeout=120)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if "Error" in line]
    assert out.returncode == 0 and errors == [], errors


def dsrdump(path: Path) -> str:
    if DSRDUMP is None:
        pytest.skip("dsrdump not found (Debian package dcmtk)")
    out = subprocess.run([DSRDUMP, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_an_analysed_film_gives_a_valid_sr_parametric_map_and_sc_in_its_study(film, tmp_path):
    assert film.analysis.label is not None and film.analysis.cam is not None
    objects = derived_objects(film)
    assert [o.SOPClassUID for o in objects] == [ComprehensiveSRStorage, ParametricMapStorage,
                                                SecondaryCaptureImageStorage]
    paths = saved(objects, tmp_path)
    for path in paths:
        validate(path)
    entities_agree([Path(film.record.path), *paths])
    source = pydicom.dcmread(film.record.path, stop_before_pixels=True)
    assert {o.StudyInstanceUID for o in objects} == {source.StudyInstanceUID}
    assert len({o.SeriesInstanceUID for o in objects} | {source.SeriesInstanceUID}) == 4

    dump = dsrdump(paths[0])
    assert "IMAGE:" in dump and "SCOORD:" in dump and "Plain chest X-ray" in dump
    sr = hd.sr.srread(paths[0])
    (library,) = [i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeMeaning == "Image Library"]
    (entry,) = library.ContentSequence[0].ContentSequence
    assert entry.ValueType == "IMAGE" and entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == \
        source.SOPInstanceUID
    (group,) = sr.content.get_planar_roi_measurement_groups(finding_type=PNEUMONIA)
    assert group.tracking_identifier == "AI result"
    region = group.roi
    assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    outline = np.asarray(region.value, np.float32)
    assert (outline[0] == outline[-1]).all() and len(outline) >= 4  # a closed line
    assert (outline >= 0).all() and (outline[:, 0] <= source.Columns).all() and (outline[:, 1] <= source.Rows).all()
    heat = film.analysis.cam.map
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert cv2.pointPolygonTest(outline.reshape(-1, 1, 2), (x + 0.5, y + 0.5), False) >= 0  # around the peak
    inside = np.zeros(heat.shape, np.uint8)
    cv2.fillPoly(inside, [np.round(outline - 0.5).astype(np.int32)], 1)
    assert heat[inside == 1].mean() > heat.mean() * 2  # the strongest evidence, not the whole film
    numbers = {(m.name.value, m.name.scheme_designator): m.value for m in group.get_measurements()}
    assert numbers[("122157", "DCM")] == pytest.approx(film.analysis.probability, abs=1e-6)  # Probability
    assert numbers[("122411", "DCM")] == pytest.approx(film.analysis.threshold, abs=1e-6)  # Threshold Value

    pm = hd.pm.ParametricMap.from_dataset(pydicom.dcmread(paths[1]))
    assert pm.pixel_array.shape == (source.Rows, source.Columns) and pm.pixel_array.dtype == np.float32
    assert np.abs(pm.pixel_array - heat).max() < 1e-6
    (derivation,) = pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence
    assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert derivation.SourceImageSequence[0].SpatialLocationsPreserved == "YES"
    assert pm.FrameOfReferenceUID == source.get("FrameOfReferenceUID", pm.FrameOfReferenceUID)


def test_unchanged_results_repeat_their_uids_and_a_decision_names_its_predecessor(dicom_data, engine):
    reading = analysed(engine, dicom_data / "RG1_UNCR.dcm")
    first = derived_objects(reading)
    again = derived_objects(analysed(engine, dicom_data / "RG1_UNCR.dcm"))  # analysed anew: the same result
    assert [(o.SeriesInstanceUID, o.SOPInstanceUID) for o in again] == \
        [(o.SeriesInstanceUID, o.SOPInstanceUID) for o in first]

    decided = derived_objects(replace(reading, decision=DECISION))
    sr, pm, sc = decided
    assert sr.SOPInstanceUID != first[0].SOPInstanceUID and sr.SeriesInstanceUID == first[0].SeriesInstanceUID
    (predecessor,) = sr.PredecessorDocumentsSequence
    assert predecessor.StudyInstanceUID == first[0].StudyInstanceUID
    named = predecessor.ReferencedSeriesSequence[0]
    assert named.SeriesInstanceUID == first[0].SeriesInstanceUID
    assert named.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first[0].SOPInstanceUID
    assert pm.SOPInstanceUID == first[1].SOPInstanceUID  # the heatmap does not depend on the reader
    assert sc.SOPInstanceUID != first[2].SOPInstanceUID  # the picture shows the decision

    later = replace(DECISION, decision="normal", decided_at="2026-11-24T08:00:00+00:00")
    (changed, *_) = derived_objects(replace(reading, decision=later), previous=DECISION)
    assert changed.SOPInstanceUID not in (sr.SOPInstanceUID, first[0].SOPInstanceUID)
    named = changed.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert named.ReferencedSOPInstanceUID == sr.SOPInstanceUID


def test_a_refused_ct_gets_an_sr_only_that_says_why_and_is_no_chest_xray(dicom_data, engine, tmp_path):
    reading = analysed(engine, dicom_data / "693_J2KR.dcm")
    assert reading.analysis.label is None and reading.analysis.refused
    (sr,) = derived_objects(reading)
    (path,) = saved([sr], tmp_path)
    validate(path)
    entities_agree([dicom_data / "693_J2KR.dcm", path])
    dump = dsrdump(path)
    assert "IMAGE:" in dump and "SCOORD" not in dump
    assert "Plain chest X-ray" not in dump and "Imaging procedure" in dump
    sr = pydicom.dcmread(path)
    assert texts(sr, "Why the gate refused the film") == [str(r) for r in reading.analysis.refused]
    images = [i for i in content(sr) if i.ValueType == "IMAGE"]
    ct = pydicom.dcmread(dicom_data / "693_J2KR.dcm", stop_before_pixels=True).SOPInstanceUID
    assert images and {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in images} == {ct}
    hd.sr.srread(path)


def test_a_film_without_type_2_attributes_exports_them_empty(dicom_data, engine, tmp_path):
    ds = pydicom.dcmread(dicom_data / "RG1_UNCR.dcm")
    missing = ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName", "StudyID", "StudyDate",
               "StudyTime")
    for keyword in missing:
        delattr(ds, keyword)
    film = tmp_path / "bare.dcm"
    ds.save_as(film)
    reading = analysed(engine, film)
    reading, picture = film_picture(reading)
    out = export_dicom(reading, picture, tmp_path / "export")
    assert out.pm is not None
    for path in (out.sr, out.pm, out.sc):
        validate(path)
        exported = pydicom.dcmread(path, stop_before_pixels=True)
        assert all(keyword in exported and not exported.get(keyword) for keyword in missing)


@pytest.mark.parametrize("uid", ["../../etc/x", "1.2." + "3" * 5000, "1.02.3"])
def test_a_film_with_an_invalid_uid_is_refused_and_nothing_is_written(dicom_data, engine, tmp_path, uid):
    ds = pydicom.dcmread(dicom_data / "RG1_UNCR.dcm")
    ds.SOPInstanceUID = uid
    film = tmp_path / "bad-uid.dcm"
    ds.save_as(film)
    reading = analysed(engine, film)
    with pytest.raises(XRayViewerError, match="SOPInstanceUID .* is not a valid DICOM UID") as caught:
        derived_objects(reading)
    assert str(film) in str(caught.value) and len(caught.value.reason) < 250 and "\n" not in str(caught.value)
    with pytest.raises(XRayViewerError):
        export_dicom(*film_picture(reading), tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_a_picture_file_gets_an_sr_and_an_sc_with_the_evidence_on_the_sc(kermany, engine, tmp_path):
    from test_review_store import copy_films

    (path,) = copy_films(kermany, tmp_path / "films", 1)
    reading = analysed(engine, path)
    objects = derived_objects(reading)
    assert [o.SOPClassUID for o in objects] == [ComprehensiveSRStorage, SecondaryCaptureImageStorage]
    paths = saved(objects, tmp_path / "out")
    for p in paths:
        validate(p)
    entities_agree(paths)
    sr, sc = objects
    assert "IMAGE:" in dsrdump(paths[0])
    if reading.analysis.cam is not None and not reading.analysis.cam.empty:
        (region,) = [i for i in content(sr) if i.ValueType == "SCOORD" and i.GraphicType == "POLYLINE"]
        points = np.array(region.GraphicData).reshape(-1, 2)
        assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == sc.SOPInstanceUID
        assert (points[:, 0] <= sc.Columns).all() and (points[:, 1] <= sc.Rows).all()
    assert [o.SOPInstanceUID for o in derived_objects(reading)] == [o.SOPInstanceUID for o in objects]


def test_export_command_rewrites_the_same_objects_and_a_pacs_stores_nothing_new(orthanc, data_home, dicom_data,
                                                                               tmp_path):
    from test_pacs import CHEST_CR, chest_study, lines, xrayviewer

    (film,) = lines(xrayviewer(data_home, "pacs", "get", orthanc.node, chest_study(dicom_data)))
    exported = []
    for _ in range(2):
        result = xrayviewer(data_home, "export", film["path"], "--out", str(tmp_path / "out"), "--send", orthanc.node)
        assert result.returncode == 0, result.stderr
        (line,) = lines(result)
        exported.append([pydicom.dcmread(line[k], stop_before_pixels=True).SOPInstanceUID for k in ("sr", "pm", "sc")])
        instances = {i["MainDicomTags"]["SOPInstanceUID"] for i in orthanc.instances_of(chest_study(dicom_data))}
        assert set(exported[-1]) <= instances
        if len(exported) == 1:
            first = instances
    assert exported[0] == exported[1] and instances == first  # the second send added nothing
    source = pydicom.dcmread(dicom_data / CHEST_CR, stop_before_pixels=True).SOPInstanceUID
    assert source in instances
    again = xrayviewer(data_home, "pacs", "get", orthanc.node, chest_study(dicom_data))  # the study, retrieved again
    assert [f["path"] for f in lines(again)] == [film["path"]], again.stdout  # the film only: not the overlay SC
    assert "this viewer's own AI overlay, not a film: skipped" in again.stderr
    assert "this viewer's own AI heatmap, not a film: skipped" in again.stderr
