"""Reading tools on real films: lengths in mm from the file's pixel spacing, angle, ROI, orientation, window/level
direction, cine, marks saved with the review, and the PNG / DICOM SC and SR exports read back with pydicom."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from test_export_picture import text_rows
from test_gui_review import open_window, settle

from xrayviewer.core import read_image, to_display
from xrayviewer.core.review.dicom_export import export_dicom
from xrayviewer.core.review.measure import angle, measure, roi
from xrayviewer.core.review.report_image import LINE_SHARE, Reading, reading_picture, result_lines
from xrayviewer.core.review.store import Decision, ReviewStore

SPACING = (0.15, 0.143)  # row, column mm: anisotropic, so a wrong axis order shows


def rg1_with_spacing(dicom_data: Path, folder: Path, keyword: str = "PixelSpacing") -> Path:
    """RG1 (whose PixelSpacing is 0\\0, i.e. unknown) with a real spacing written into `keyword`."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(dicom_data / "RG1_UNCR.dcm")
    del ds.PixelSpacing
    setattr(ds, keyword, list(SPACING))
    path = folder / f"RG1_{keyword}.dcm"
    ds.save_as(path)
    return path


def drag(qtbot, view, a: QPoint, b: QPoint) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(view, b)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=b)


def test_rg1_has_no_spacing_so_lengths_are_in_pixels_and_say_so(dicom_data):
    record = read_image(dicom_data / "RG1_UNCR.dcm")
    mark = measure(record, "length", [(100, 200), (400, 600)])
    assert mark.unit == "px" and mark.value == pytest.approx(500.0) and "no pixel spacing" in mark.text


def test_zero_pixel_spacing_leaves_a_valid_imager_pixel_spacing_in_use(tmp_path, dicom_data):
    """RG1's PixelSpacing is 0\\0 (unknown); an ImagerPixelSpacing beside it is the spacing to measure with."""
    ds = pydicom.dcmread(dicom_data / "RG1_UNCR.dcm")
    ds.ImagerPixelSpacing = list(SPACING)
    ds.save_as(tmp_path / "rg1.dcm")
    record = read_image(tmp_path / "rg1.dcm")
    assert record.metadata.pixel_spacing == SPACING
    assert measure(record, "length", [(0, 0), (0, 100)]).value == pytest.approx(100 * SPACING[0])


@pytest.mark.parametrize("keyword", ["PixelSpacing", "ImagerPixelSpacing"])
def test_length_drawn_on_rg1_in_mm_equals_the_pixel_spacing_maths(qtbot, tmp_path, dicom_data, keyword):
    path = rg1_with_spacing(dicom_data, tmp_path / "films", keyword)
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([path])
    view = window.panes[0].view
    window.set_tool("length")
    a, b = QPoint(200, 250), QPoint(520, 610)
    drag(qtbot, view, a, b)
    (mark,) = view.marks
    (x0, y0), (x1, y1) = view.to_image(QPointF(a)), view.to_image(QPointF(b))
    expected = math.hypot((x1 - x0) * SPACING[1], (y1 - y0) * SPACING[0])
    assert mark.unit == "mm" and mark.value == pytest.approx(expected, rel=1e-9)
    assert mark.text == f"{expected:.1f} mm" and expected > 50  # a real drag, hundreds of pixels long
    settle(qtbot, window)


def test_angle_and_roi_statistics(dicom_data):
    assert angle((10, 0), (0, 0), (0, 10)).value == pytest.approx(90)
    assert angle((10, 0), (0, 0), (-10, 0.0)).value == pytest.approx(180)
    record = read_image(dicom_data / "RG1_UNCR.dcm")
    region = record.pixels[300:420, 500:700].astype(float)
    found = roi(record, (700, 420), (500, 300))  # corners in any order
    assert found.value == pytest.approx(region.mean()) and f"SD {region.std():.1f}" in found.text


def test_window_level_drag_darkens_monochrome1_and_monochrome2_alike(qtbot, tmp_path, dicom_data):
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    view = window.panes[0].view
    for name in ("RG1_UNCR.dcm", "MR2_UNCR.dcm"):  # MONOCHROME1 and MONOCHROME2
        record = read_image(dicom_data / name)
        view.set_record(record)
        before = view.display.astype(float).mean()
        drag(qtbot, view, QPoint(300, 300), QPoint(300, 380))  # straight down
        assert view.display.astype(float).mean() < before - 5, name
    assert read_image(dicom_data / "RG1_UNCR.dcm").invert_default
    settle(qtbot, window)


def test_rotate_and_flip_keep_marks_on_the_anatomy(qtbot, tmp_path, dicom_data):
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    view = window.panes[0].view
    view.set_record(read_image(dicom_data / "RG1_UNCR.dcm"))
    point = QPointF(250, 200)
    before = view.to_image(point)
    view.rotate_90()
    t = view.image_transform()
    top_left, bottom_left = t.map(QPointF(0, 0)), t.map(QPointF(0, view.record.rows))
    assert top_left.x() > bottom_left.x() and top_left.y() == pytest.approx(bottom_left.y())  # clockwise
    assert view.to_image(t.map(QPointF(*before))) == pytest.approx(before)
    view.flip()
    flipped = view.image_transform().map(QPointF(*before))
    assert view.to_image(flipped) == pytest.approx(before)
    settle(qtbot, window)


def test_cine_decodes_frames_once_and_plays_without_rereading(qtbot, tmp_path):
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([pydicom.data.get_testdata_file("emri_small.dcm")])  # 10 frames
    assert window.cine_action.isVisible() and window.frame.maximum() == 10
    loads = window.load_generation
    window.cine_action.trigger()
    qtbot.waitUntil(lambda: len(window.cine_frames) == 10, timeout=20_000)
    seen = set()
    qtbot.waitUntil(lambda: seen.add(window.panes[0].view.record.frame) or len(seen) >= 5, timeout=20_000)
    assert window.load_generation == loads  # frames came from the decoded list, no file was read again
    assert [f.frame for f in window.cine_frames] == list(range(10))
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.cine_action.trigger()  # stop: the frame on screen is analysed
    settle(qtbot, window)


def test_cine_of_frames_too_large_to_hold_says_so_and_play_comes_back_up(qtbot, tmp_path, monkeypatch):
    from xrayviewer.core.reading import limits

    monkeypatch.setattr(limits, "MAX_FRAMES_BYTES", 1000)  # emri_small's 10 frames take 80 kB
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([pydicom.data.get_testdata_file("emri_small.dcm")])
    window.cine_action.trigger()
    qtbot.waitUntil(lambda: not window.cine_action.isChecked(), timeout=20_000)
    assert "too many frames to play" in window.banner.text() and window.cine_frames == []
    window.frame.setValue(4)  # stepping still works, one frame at a time
    qtbot.waitUntil(lambda: window.panes[0].view.record.frame == 3, timeout=20_000)
    settle(qtbot, window)


def test_marks_are_saved_with_the_review_and_come_back(qtbot, tmp_path, dicom_data):
    path = rg1_with_spacing(dicom_data, tmp_path / "films")
    db = tmp_path / "store" / "review.sqlite"
    window = open_window(qtbot, "mobilenetv2", db)
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.review_paths([path.parent])
    qtbot.waitUntil(lambda: not window.workers, timeout=60_000)
    view = window.panes[0].view
    window.set_tool("length")
    drag(qtbot, view, QPoint(200, 250), QPoint(520, 610))
    window.set_tool("arrow")
    drag(qtbot, view, QPoint(600, 200), QPoint(500, 300))
    with ReviewStore(db) as store:
        film = store.films()[0]
        assert [m.kind for m in store.marks(film.id)] == ["length", "arrow"]
    window.close()
    again = open_window(qtbot, "mobilenetv2", db)
    qtbot.waitUntil(lambda: len(again.panes[0].view.marks) == 2, timeout=30_000)
    assert again.panes[0].view.marks[0].unit == "mm"
    settle(qtbot, window, again)


def exported_reading(dicom_data: Path, folder: Path) -> tuple[Reading, np.ndarray]:
    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.core.analysis.overlay import OverlayStyle, composite

    record = read_image(rg1_with_spacing(dicom_data, folder))
    display = to_display(record)
    engine = Engine("cpu")
    analysis = engine.analyze(engine.model("mobilenetv2"), display, record=record, force=True)
    marks = (measure(record, "length", [(400, 500), (1400, 500)]), measure(record, "roi", [(800, 800), (1000, 990)]),
             measure(record, "angle", [(300, 900), (600, 1200), (900, 900)]),
             measure(record, "arrow", [(9, 9), (90, 90)]), measure(record, "text", [(1200, 1400)], "consolidation?"))
    decision = Decision("pneumonia", "right lower zone", "Dr Test", "2026-11-23T19:00:00+00:00", {})
    reading = Reading(record, analysis, decision, marks, "ab" * 32)
    return reading, composite(display, analysis.cam.heat, OverlayStyle())


def test_png_result_block_is_legible_on_a_large_film(tmp_path, dicom_data):
    reading, view = exported_reading(dicom_data, tmp_path)
    picture = reading_picture(view, reading)
    lines = result_lines(reading)
    assert picture.shape[1] == view.shape[1] and picture.shape[0] > view.shape[0]
    heights = sorted(b - a for a, b in text_rows(picture[view.shape[0]:]))
    assert heights[len(heights) // 2] >= 0.8 * LINE_SHARE * view.shape[1] > 29  # about 37 px on a 1841-px film
    text = "\n".join(lines)
    for expected in ("9RG1", "2004-08-26", "mobilenetv2", "threshold", "PNEUMONIA by Dr Test", "Exported"):
        assert expected in text
    assert "^" not in text


def test_dicom_sc_and_sr_read_back_and_reference_the_source(tmp_path, dicom_data):
    reading, view = exported_reading(dicom_data, tmp_path / "films")
    out = export_dicom(reading, reading_picture(view, reading), tmp_path / "export")
    source = pydicom.dcmread(reading.record.path, stop_before_pixels=True)
    sc, sr = pydicom.dcmread(out.sc), pydicom.dcmread(out.sr)
    assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert sc.StudyInstanceUID == source.StudyInstanceUID and sc.PatientID == source.PatientID
    assert sc.SeriesInstanceUID != source.SeriesInstanceUID
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.pixel_array.shape[2] == 3 and sc.Rows > source.Rows
    assert sr.SOPClassUID == pydicom.uid.ComprehensiveSRStorage and sr.StudyInstanceUID == source.StudyInstanceUID
    evidence = {item.ReferencedSOPInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}
    assert evidence == {source.SOPInstanceUID, sc.SOPInstanceUID, pydicom.dcmread(out.pm).SOPInstanceUID}

    def items(sequence):
        for item in sequence:
            yield item
            yield from items(item.get("ContentSequence", []))

    content = list(items(sr.ContentSequence))
    numbers = {i.ConceptNameCodeSequence[0].CodeMeaning: float(i.MeasuredValueSequence[0].NumericValue)
               for i in content if i.ValueType == "NUM"}
    assert numbers["Length"] == pytest.approx(reading.marks[0].value, abs=1e-3)
    assert numbers["Length"] == pytest.approx(1000 * SPACING[1], abs=1e-3)  # a horizontal 1000-px line
    assert numbers["Probability"] == pytest.approx(reading.analysis.probability, abs=1e-6)
    codes = [(i.ConceptNameCodeSequence[0].CodeMeaning, i.ConceptCodeSequence[0].CodeMeaning)
             for i in content if i.ValueType == "CODE"]
    assert ("Pneumonia", "Present") in codes  # the AI finding and the reader's decision
    assert any(i.ValueType == "TEXT" and i.TextValue == "right lower zone" for i in content)
    regions = [i for i in content if i.ValueType == "SCOORD"]
    assert regions and all(r.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                           == source.SOPInstanceUID for r in regions)
    # every mark is a region: the arrow a two-point line, the text a point with its words beside it; and the AI's
    # strongest evidence, a closed line
    assert sorted(r.GraphicType for r in regions) == ["POINT"] + ["POLYLINE"] * 5
    assert [list(r.GraphicData) for r in regions if r.GraphicType == "POINT"] == [[1200.5, 1400.5]]
    assert any(i.ValueType == "TEXT" and i.TextValue == "consolidation?" for i in content)


def test_exported_png_is_turned_as_on_screen_with_the_marks_on_the_same_anatomy(tmp_path, dicom_data):
    reading, view = exported_reading(dicom_data, tmp_path)
    reading = replace(reading, marks=(measure(reading.record, "arrow", [(100, 150), (300, 150)]),))
    turned = reading_picture(view, replace(reading, rotation=90, flipped=True))
    h, w = view.shape[:2]
    assert turned.shape[1] == h and turned.shape[0] > w  # the film on its side, the result block still below it
    # clockwise by 90 then mirrored is a transpose: the film's (x, y) is the picture's (y, x), marks included
    changed = (turned[:w, :h] != view.transpose(1, 0, 2)).any(axis=2)
    rows, columns = np.nonzero(changed)
    assert 146 <= np.median(columns) <= 154  # the arrow along y = 150 of the film, now a column there
    assert 60 <= columns.min() and columns.max() <= 240 and 90 <= rows.min() and rows.max() <= 310  # and its head


def test_picture_file_exports_start_a_new_study(tmp_path, kermany):
    from test_review_store import copy_films

    (path,) = copy_films(kermany, tmp_path / "films", 1)
    record = read_image(path)
    reading = Reading(record)
    out = export_dicom(reading, reading_picture(to_display(record), reading), tmp_path / "export")
    sc = pydicom.dcmread(out.sc)
    assert sc.StudyInstanceUID and "SourceImageSequence" not in sc and sc.PatientOrientation == ""
    shutil.rmtree(tmp_path / "export")
