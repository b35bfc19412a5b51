"""The DICOM SC and SR exports pass dciodvfy (dicom3tools, installed by .ci/run) with no error, and carry what the
screen shows: laterality/body part/study description kept, burned-in annotation declared, the orientation after a
rotation, UTF-8 notes, population notes, the gate's reasons and out-of-scope flag, the decision time, ROI SD and
area, the private coding scheme declared, no invented observer; a picture file keeps one study and its name."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from test_reading_tools import exported_reading

from xrayviewer import __version__
from xrayviewer.core import read_image, to_display
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.review.dicom_export import export_dicom
from xrayviewer.core.review.measure import measure
from xrayviewer.core.review.report_image import Reading, reading_picture

DCIODVFY = shutil.which("dciodvfy")
NOTE = "Verschattung rechts, 肺炎? — проверить"


def validate(path: Path) -> None:
    """dciodvfy's verdict on `path`: no line with an Error (warnings are allowed)."""
    if DCIODVFY is None:
        pytest.skip("dciodvfy not found (Debian package dicom3tools): the exports cannot be validated here")
    out = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if "Error" in line]
    assert errors == [], f"{path.name}: {errors}"


def content(sr: pydicom.Dataset) -> list[pydicom.Dataset]:
    def items(sequence):
        for item in sequence:
            yield item
            yield from items(item.get("ContentSequence", []))

    return list(items(sr.ContentSequence))


def texts(sr: pydicom.Dataset, meaning: str) -> list[str]:
    return [i.TextValue for i in content(sr) if i.ValueType == "TEXT"
            and i.ConceptNameCodeSequence[0].CodeMeaning == meaning]


def coded(sr: pydicom.Dataset, meaning: str) -> list[str]:
    return [i.ConceptCodeSequence[0].CodeMeaning for i in content(sr) if i.ValueType == "CODE"
            and i.ConceptNameCodeSequence[0].CodeMeaning == meaning]


def test_a_dicom_film_exports_valid_sc_and_sr_with_what_the_screen_shows(tmp_path, dicom_data):
    reading, view = exported_reading(dicom_data, tmp_path / "films")
    reading = replace(reading, decision=replace(reading.decision, note=NOTE), rotation=90)
    out = export_dicom(reading, reading_picture(view, reading), tmp_path / "export")
    for path in (out.sc, out.sr):
        validate(path)
    source = pydicom.dcmread(reading.record.path, stop_before_pixels=True)
    sc, sr = pydicom.dcmread(out.sc), pydicom.dcmread(out.sr)
    assert list(source.PatientOrientation) == ["L", "F"] and list(sc.PatientOrientation) == ["H", "L"]
    assert sc.BurnedInAnnotation == "YES"
    assert (sc.BodyPartExamined, sc.StudyDescription) == (source.BodyPartExamined, source.StudyDescription)
    assert sr.SpecificCharacterSet == "ISO_IR 192" and NOTE in texts(sr, "Comment")
    assert texts(sr, "Population note") == [str(n) for n in reading.analysis.notes] != []
    assert coded(sr, "Analysed although the gate refused the film") == ["No"]
    assert [i.DateTime for i in content(sr) if i.ValueType == "DATETIME"][0].startswith("20261123")
    numbers = {i.ConceptNameCodeSequence[0].CodeMeaning: float(i.MeasuredValueSequence[0].NumericValue)
               for i in content(sr) if i.ValueType == "NUM"}
    region = reading.record.pixels[800:990, 800:1000].astype(float)
    assert numbers["Standard Deviation"] == pytest.approx(region.std(), abs=1e-3)
    assert numbers["Area"] == pytest.approx(region.size * 0.15 * 0.143, rel=1e-6)
    assert [s.CodingSchemeDesignator for s in sr.CodingSchemeIdentificationSequence] == ["99XRAYVIEWER"]
    versions = [i.TextValue for i in content(sr) if i.ConceptNameCodeSequence[0].CodeMeaning == "Algorithm Version"]
    assert set(versions) == {__version__}
    assert "Dr Test^" in [str(i.PersonName) for i in content(sr) if i.ValueType == "PNAME"]


def test_refused_and_forced_films_say_why_and_no_decision_names_no_observer(tmp_path, dicom_data):
    record = read_image(dicom_data / "693_J2KR.dcm")  # a CT slice: the gate refuses it
    display = to_display(record)
    engine = Engine("cpu")
    model = engine.model("mobilenetv2")
    for force in (False, True):
        analysis = engine.analyze(model, display, record=record, force=force)
        assert analysis.refused
        reading = Reading(record, analysis)
        out = export_dicom(reading, reading_picture(display, reading), tmp_path / f"force-{force}")
        assert (out.pm is not None) == force  # the heatmap of a forced analysis, on the CT's own plane
        for path in filter(None, (out.sc, out.sr, out.pm)):
            validate(path)
        sr = pydicom.dcmread(out.sr)
        procedure = [i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeMeaning == "Procedure reported"]
        assert procedure[0].ConceptCodeSequence[0].CodeMeaning == "Imaging procedure"  # not a plain chest X-ray
        assert texts(sr, "Why the gate refused the film") == [str(r) for r in analysis.refused]
        assert [i for i in content(sr) if i.ValueType == "PNAME"] == []  # no reader decided: no person observer
        if force:
            assert coded(sr, "Analysed although the gate refused the film") == ["Yes"]
        else:
            assert coded(sr, "Pneumonia") == ["Not judged by the model"]


def test_a_picture_file_keeps_one_study_its_name_and_regions_on_the_turned_sc(tmp_path, kermany):
    from test_review_store import copy_films

    (path,) = copy_films(kermany, tmp_path / "films", 1)
    record = read_image(path)
    reading = Reading(record, marks=(measure(record, "arrow", [(10, 20), (100, 20)]),), rotation=90)
    first = export_dicom(reading, reading_picture(to_display(record), reading), tmp_path / "a")
    second = export_dicom(reading, reading_picture(to_display(record), reading), tmp_path / "b")
    for p in (first.sc, first.sr):
        validate(p)
    sc, sr = pydicom.dcmread(first.sc), pydicom.dcmread(first.sr)
    assert sc.StudyInstanceUID == pydicom.dcmread(second.sc, stop_before_pixels=True).StudyInstanceUID
    assert sr.StudyInstanceUID == sc.StudyInstanceUID
    assert texts(sr, "Source picture file name") == [path.name]
    (scoord,) = [i for i in content(sr) if i.ValueType == "SCOORD"]
    points = np.array(scoord.GraphicData).reshape(-1, 2)
    scale = sc.Columns / record.rows  # turned by 90: the film's height is the SC's width, then enlarged
    assert points[:, 0] == pytest.approx([(record.rows - 1 - 20.5) * scale + 0.5 * (scale - 1)] * 2, abs=scale)
    assert points[1, 1] > points[0, 1]  # the arrow along the film's x runs down the turned picture


def test_a_picture_file_carries_the_identity_the_user_gave_in_headers_and_burned_in(tmp_path, kermany):
    from test_review_store import copy_films

    from xrayviewer.core.review.dicom_export import Identity, identified
    from xrayviewer.core.review.report_image import result_lines

    (path,) = copy_films(kermany, tmp_path / "films", 1)
    record = read_image(path)
    reading = identified(Reading(record), Identity("DOE^JANE", "P-0042", "ACC-7"))
    out = export_dicom(reading, reading_picture(to_display(record), reading), tmp_path / "export")
    for p in (out.sc, out.sr):
        validate(p)
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        assert (str(ds.PatientName), ds.PatientID, ds.AccessionNumber) == ("DOE^JANE", "P-0042", "ACC-7")
    assert "ID: P-0042" in result_lines(reading)[0] and "DOE" in result_lines(reading)[0]


def test_export_command_writes_a_picture_file_with_its_identity(tmp_path, kermany):
    import json
    import os
    import sys

    from test_review_store import copy_films

    (path,) = copy_films(kermany, tmp_path / "films", 1)
    env = {**os.environ, "XRAYVIEWER_DB": str(tmp_path / "review.sqlite")}

    def xrayviewer(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    assert xrayviewer("worklist", str(path)).returncode == 0
    result = xrayviewer("export", str(path), "--out", str(tmp_path / "out"), "--patient-id", "P-9", "--accession",
                        "A-1")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    sr = pydicom.dcmread(line["sr"])
    assert (sr.PatientID, sr.AccessionNumber, line["sent_to"]) == ("P-9", "A-1", None)
    assert any(i.ValueType == "NUM" for i in content(sr))  # the stored film's AI result
    validate(Path(line["sc"]))
    anonymous = xrayviewer("export", str(path), "--out", str(tmp_path / "anonymous"))
    assert anonymous.returncode == 0 and json.loads(anonymous.stdout)["pm"] is None  # no DICOM film to lay it on
    (warning,) = anonymous.stderr.splitlines()
    assert warning.startswith(f"warning: {path}: a picture file carries no patient") and "--patient-id" in warning
    unknown = xrayviewer("export", str(tmp_path / "films" / "nope.png"), "--out", str(tmp_path / "out"))
    assert unknown.returncode == 1 and "not in the review store" in unknown.stderr


def test_the_viewer_asks_a_picture_files_identity_before_the_dicom_export(qtbot, tmp_path, kermany, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QFileDialog, QLabel
    from test_gui_review import open_window, settle
    from test_review_store import copy_films

    from xrayviewer.gui.identity_dialog import IdentityDialog

    (path,) = copy_films(kermany, tmp_path / "films", 1)
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([path])
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(tmp_path / "out")))
    seen = []

    def answer(cancel: bool) -> None:
        dialog = QApplication.activeModalWidget()
        seen.append(str(path) in dialog.findChildren(QLabel)[0].text())  # it says which file it asks about
        dialog.patient_name.setText("ROE^RICHARD")
        dialog.patient_id.setText("P-77")
        dialog.reject() if cancel else dialog.accept()

    QTimer.singleShot(300, lambda: answer(cancel=True))
    window.export_dicom()  # cancelled: nothing is written
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    QTimer.singleShot(300, lambda: answer(cancel=False))
    window.export_dicom()
    qtbot.waitUntil(lambda: len(list((tmp_path / "out").glob("*.dcm"))) == 2, timeout=60_000)
    sc = pydicom.dcmread(next((tmp_path / "out").glob("*.sc.dcm")), stop_before_pixels=True)
    assert (str(sc.PatientName), sc.PatientID) == ("ROE^RICHARD", "P-77") and seen == [True, True]
    assert not window.findChildren(IdentityDialog)
    settle(qtbot, window)
