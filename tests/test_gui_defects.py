"""The defects of a day's start: threads that import pydicom at once, a worklist that fails silently, a note typed just
before a crash. Real window (offscreen), real store, real films and model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from test_gui_review import on_screen, open_window, settle
from test_review_store import copy_films

from xrayviewer.core.review.store import ReviewStore

RACE = """
import json, sys
from xrayviewer.gui.app import application
app = application()
from PySide6.QtCore import QThreadPool
from xrayviewer.gui.workers import Worker, start

def work():
    module = sys.modules.get("pydicom.dataset")
    ready = module is not None and hasattr(module, "Dataset")
    from xrayviewer.core.reading.reader import read_image  # noqa: F401
    from xrayviewer.core.reading.study import scan  # noqa: F401
    return ready

seen, errors = [], []
workers = [Worker(work) for _ in range(6)]
for worker in workers:
    worker.signals.result.connect(seen.append)
    worker.signals.error.connect(errors.append)
    start(worker)
QThreadPool.globalInstance().waitForDone(60_000)
app.processEvents()
print(json.dumps({"seen": seen, "errors": errors}))
"""


def test_workers_start_with_the_readers_loaded(tmp_path):
    """Start-up race: two threads importing pydicom at once met a half-initialised module ('cannot import name
    Dataset'), and the worklist stayed empty. Every worker now finds pydicom whole before its work starts."""
    out = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"seen": [True] * 6, "errors": []}


def test_a_worklist_that_cannot_be_filled_says_why(qtbot, tmp_path, kermany):
    """It said '0 of 0 reviewed' and nothing else."""
    copy_films(kermany, tmp_path / "films", 2)
    db = tmp_path / "films" / "review.sqlite"  # the store among the films: the worklist refuses to scan it
    window = open_window(qtbot, "mobilenetv2", db)
    window.review_paths([tmp_path / "films"])
    qtbot.waitUntil(lambda: not window.workers, timeout=60_000)
    text = window.worklist.progress.text()
    assert text.startswith("The worklist could not be filled:") and "review database lies among the films" in text
    settle(qtbot, window)


def test_a_note_typed_just_before_a_crash_is_kept(qtbot, tmp_path, kermany):
    """The draft was written 0.5 s after the last key: typed at a key per 30 ms and killed 150 ms later, the note was
    lost. Here the store is read from another connection 150 ms after the last key, as a restart would read it."""
    window = reviewing(qtbot, tmp_path, kermany, 2)
    db = tmp_path / "store" / "review.sqlite"  # reviewing()'s store
    film = window.worklist.current()
    qtbot.waitUntil(lambda: on_screen(window) == film.info.path and window.film is not None, timeout=30_000)
    qtbot.keyClick(window.panes[0].view, Qt.Key.Key_N)
    qtbot.keyClicks(window.worklist.note, "RLL consolidation", delay=30)
    qtbot.wait(150)
    with ReviewStore(db) as store:
        assert store.draft(film.id) == "RLL consolidation"
    settle(qtbot, window)


def viewer(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 240), **kwargs)


def test_screenshot_errors_exit_1_and_the_picture_has_the_first_window_size(tmp_path):
    """--screenshot exited 0 writing nothing into a missing folder and hung silently on an unreadable first file;
    offscreen it rendered at 830x760; --compare saved compare=true for the next normal start."""
    missing = viewer("--demo", "--screenshot", str(tmp_path / "no" / "shot.png"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    unreadable = viewer(str(notes), "--screenshot", str(tmp_path / "notes.png"), timeout=90)
    assert unreadable.returncode == 1 and "notes.txt" in unreadable.stderr
    assert not (tmp_path / "notes.png").exists()

    from xrayviewer.gui.settings import Settings

    settings = Settings()
    settings.set_compare(False)  # an earlier test of the suite may have left side by side on
    settings.store.sync()
    shot = tmp_path / "compare.png"
    done = viewer("--demo", "--compare", "--screenshot", str(shot))
    assert done.returncode == 0, done.stderr
    import cv2

    assert cv2.imread(str(shot)).shape[:2] == (950, 1500)
    settings.store.sync()  # read back what the viewer's run left on disk
    assert settings.compare() is False  # the tests' own settings folder (conftest), as the next start reads it


def test_ctrl_c_closes_the_viewer(tmp_path, kermany):
    """Ctrl-C left the viewer up 30 s later, or a KeyboardInterrupt traceback from the analysis."""
    import os
    import signal
    import time

    copy_films(kermany, tmp_path / "films", 3)
    db = tmp_path / "review.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "xrayviewer", "--review", str(tmp_path / "films"), "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    try:
        deadline = time.monotonic() + 120
        while not db.exists() and time.monotonic() < deadline:  # the worklist is being filled: the loop runs
            time.sleep(0.2)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_recent_and_the_last_folder_are_absolute(tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from xrayviewer.gui.settings import Settings

    (tmp_path / "films").mkdir()
    monkeypatch.chdir(tmp_path)
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    settings.remember(Path("films"))
    assert settings.recent() == [str(tmp_path / "films")] and settings.last_folder() == str(tmp_path / "films")


def reviewing(qtbot, tmp_path: Path, kermany, films: int):
    """A window reviewing a folder of `films` chest films in a new store, its worklist filled."""
    folder = tmp_path / "today"
    copy_films(kermany, folder, films)
    window = open_window(qtbot, "mobilenetv2", tmp_path / "store" / "review.sqlite")
    window.review_paths([folder])
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == films, timeout=60_000)
    return window


def test_the_worklist_elides_names_at_the_end_and_counts_one_film(qtbot, tmp_path, kermany):
    window = reviewing(qtbot, tmp_path, kermany, 1)
    assert window.worklist.view.textElideMode() == Qt.TextElideMode.ElideRight
    assert window.statusBar().currentMessage() in ("Worklist ready: 1 film", "")
    window.decide("normal")
    assert "all 1 film reviewed" in window.statusBar().currentMessage()
    settle(qtbot, window)


def test_retrieved_films_replace_the_worklist_only_when_the_reader_says_so(qtbot, tmp_path, kermany, monkeypatch):
    folder = tmp_path / "today"
    copy_films(kermany, folder, 2)
    retrieved = copy_films(kermany, tmp_path / "cache", 1, start=10)
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    window.review_paths([folder])
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == 2, timeout=60_000)
    asked: list[str] = []

    def answer(reply):
        def question(parent, title, text, *args):
            asked.append(text)
            return reply
        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    window.pacs.review_retrieved([str(p) for p in retrieved])
    assert "Replace the worklist (2 films, 2 unread) with the 1 film retrieved?" in asked[0]
    assert window.session.roots == [folder] and "the worklist stays" in window.statusBar().currentMessage()
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    window.pacs.review_retrieved([str(p) for p in retrieved])
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == 1, timeout=60_000)
    assert [f.info.path for f in window.worklist.table.films] == [str(retrieved[0])]
    settle(qtbot, window)


def test_the_worklists_report_is_exported_from_the_viewer(qtbot, tmp_path, kermany):
    """The day's report could only be written by `xrayviewer report` on the command line."""
    import csv

    window = reviewing(qtbot, tmp_path, kermany, 3)
    film = window.worklist.current()
    qtbot.waitUntil(lambda: window.film is not None and window.film.id == film.id, timeout=30_000)
    window.decide("pneumonia")
    window.review.export_report(tmp_path / "report.csv")
    with open(tmp_path / "report.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert sorted(r["path"] for r in table) == sorted(str(p) for p in (tmp_path / "today").iterdir())
    assert [r["decision"] for r in table if r["path"] == film.info.path] == ["pneumonia"]
    assert "3 films, 1 reviewed" in window.statusBar().currentMessage()
    window.review.export_report(tmp_path / "missing" / "report.csv")
    assert "missing/report.csv: the report was not written" in window.banner.text()
    settle(qtbot, window)


def test_a_decision_without_a_reader_name_never_names_the_login(qtbot, tmp_path, kermany):
    """The exported picture said 'by root' and the SR's observer was 'root^': the login stood in for the reader."""
    from xrayviewer.gui.settings import Settings

    Settings().set_reader("")
    window = reviewing(qtbot, tmp_path, kermany, 2)
    db = tmp_path / "store" / "review.sqlite"  # reviewing()'s store
    window.worklist.move("first")  # a film with another after it: the status bar keeps the confirmation
    first = window.worklist.order()[0]
    qtbot.waitUntil(lambda: window.film is not None and window.film.id == first.id, timeout=30_000)
    window.decide("normal")
    assert "normal saved without a reader name" in window.statusBar().currentMessage()
    with ReviewStore(db) as store:
        assert store.film(first.id).decision.reader == ""
    settle(qtbot, window)


def test_send_to_pacs_asks_before_sending_the_ais_unverified_result(qtbot, tmp_path, kermany, monkeypatch):
    """A film without a reader decision went to the PACS as 'Pneumonia: Present' without a question."""
    from xrayviewer.core.review.pacs_nodes import add_node, remove_node

    film = copy_films(kermany, tmp_path / "films", 1)[0]
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([film])
    qtbot.waitUntil(lambda: not window.workers, timeout=60_000)
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda parent, title, text, *a: (asked.append(text), QMessageBox.StandardButton.No)[1])
    add_node("defects-closed", "NOBODY@127.0.0.1:47792")  # nothing listens: a send would fail, not hang
    try:
        window.send_to_pacs()
    finally:
        remove_node("defects-closed")
    assert len(asked) == 1 and "unverified by a reader" in asked[0] and "mobilenetv2" in asked[0]
    assert not window.workers  # nothing was sent
    settle(qtbot, window)


def test_the_worklist_shows_all_ai_positive_or_decided_films(qtbot, tmp_path, kermany):
    """It could only hide the decided films."""
    from xrayviewer.core.review.session import ai_positive

    window = reviewing(qtbot, tmp_path, kermany, 6)
    films, model = window.worklist.table.films, window.worklist.table.model
    positive = {f.id for f in films if ai_positive(f, model)}
    assert 0 < len(positive) < 6  # else the filter below shows nothing it could get wrong
    window.worklist.shown.setCurrentText("AI positive")
    assert {f.id for f in window.worklist.order()} == positive
    window.worklist.shown.setCurrentText("Decided")
    assert window.worklist.order() == []
    window.worklist.shown.setCurrentText("All films")
    window.worklist.move("first")
    first = window.worklist.order()[0]
    qtbot.waitUntil(lambda: window.film is not None and window.film.id == first.id, timeout=30_000)
    window.decide("other")
    window.worklist.shown.setCurrentText("Decided")
    assert [f.id for f in window.worklist.order()] == [first.id]
    settle(qtbot, window)


def test_the_window_is_titled_by_the_patients_name(qtbot, tmp_path, dicom_data):
    """A film retrieved from a PACS is kept under a UID-made name, and the window showed only that."""
    import shutil

    film = tmp_path / "1.2.826.0.1.3680043.8.498.1.dcm"
    shutil.copy(dicom_data / "RG1_J2KR.dcm", film)
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([film])
    assert window.windowTitle().startswith(f"CompressedSamples, RG1 - {film.name} - XRay Viewer")
    settle(qtbot, window)


def test_a_display_with_no_server_is_one_clear_message(tmp_path):
    """DISPLAY=:55 with no X server there: Qt aborted (exit 134) blaming xcb-cursor0."""
    import os

    number = next(n for n in range(55, 99) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    result = viewer("--demo", env={**env, "DISPLAY": f":{number}"}, timeout=60)
    assert result.returncode == 2 and f"No X server answers at DISPLAY=:{number}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "xcb-cursor" not in result.stderr


def test_the_worklist_shows_the_age_a_birth_date_gives(qtbot, tmp_path, dicom_data):
    """Age/Sex showed only 'F' for pydicom-data's chest CR: it has a birth date and a study date, no PatientAge."""
    import pydicom
    from pydicom.uid import generate_uid

    from xrayviewer.gui.worklist_view import COLUMNS

    folder = tmp_path / "dicom"
    folder.mkdir()
    ds = pydicom.dcmread(dicom_data / "RG1_J2KR.dcm")  # born 1940-03-05, studied 2004-08-26
    assert "PatientAge" not in ds
    ds.save_as(folder / "adult.dcm")
    ds.PatientBirthDate, ds.SOPInstanceUID = "20040201", generate_uid()
    ds.save_as(folder / "infant.dcm")
    ds = pydicom.dcmread(dicom_data / "RG3_J2KR.dcm")  # born 1979-04-08, acquired 1992-12-25
    del ds.StudyDate
    ds.save_as(folder / "no-study-date.dcm")
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    window.review_paths([folder])
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == 3, timeout=120_000)
    model, column = window.worklist.table, COLUMNS.index("Age/Sex")
    shown = {Path(f.info.path).name: model.data(model.index(row, column))
             for row, f in enumerate(model.films)}
    assert shown == {"adult.dcm": "64Y F", "infant.dcm": "6M F", "no-study-date.dcm": "13Y F"}
    assert {Path(f.info.path).name: f.info.patient_age for f in model.films} == {
        "adult.dcm": "064Y", "infant.dcm": "006M", "no-study-date.dcm": "013Y"}
    settle(qtbot, window)


def pdf_text(path: Path) -> str:
    """The text of a PDF as poppler's pdftotext reads it (Debian package poppler-utils, installed by .ci/run)."""
    import shutil

    if shutil.which("pdftotext") is None:
        import pytest

        pytest.skip("pdftotext not found (Debian package poppler-utils): the PDF's text cannot be read here")
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_worklists_report_is_exported_as_pdf_from_the_viewer_and_the_command_line(qtbot, tmp_path, kermany,
                                                                                      monkeypatch):
    """The viewer exported the day's report as CSV only."""
    from PySide6.QtWidgets import QFileDialog

    from xrayviewer.gui.settings import Settings

    monkeypatch.setattr(Settings, "reader", lambda self: "Dr Report")  # the name the decisions are saved with
    window = reviewing(qtbot, tmp_path, kermany, 3)
    film = window.worklist.current()
    qtbot.waitUntil(lambda: window.film is not None and window.film.id == film.id, timeout=30_000)
    window.decide("pneumonia")
    model = window.worklist.table.model
    threshold = window.session.engine.model(model).card.threshold
    monkeypatch.setattr(QFileDialog, "getSaveFileName",  # a name typed without a suffix, the PDF type chosen
                        lambda *a, **k: (str(tmp_path / "today-report"), "PDF (*.pdf)"))
    window.review.export_report_dialog()
    pdf = tmp_path / "today-report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-") and "3 films, 1 reviewed" in window.statusBar().currentMessage()
    db = tmp_path / "store" / "review.sqlite"  # reviewing()'s store
    command = viewer("report", "--db", str(db), "--pdf", str(tmp_path / "command.pdf"), timeout=120,
                     env={k: v for k, v in __import__("os").environ.items() if k != "QT_QPA_PLATFORM"})
    assert command.returncode == 0, command.stderr
    for path in (pdf, tmp_path / "command.pdf"):
        text = " ".join(pdf_text(path).split())
        assert "Research use only, not a diagnosis" in text and "Reader: Dr Report" in text
        assert "Films: 3 films, 1 reviewed, 2 not reviewed, 1 pneumonia" in text
        assert f"AI model: {model}, threshold {threshold:.3f}" in text
        for name in (p.name for p in (tmp_path / "today").iterdir()):
            assert name in text
        assert "pneumonia Dr Report" in text  # the decision's row
    (tmp_path / "a-file").write_text("not a folder")
    refused = viewer("report", "--db", str(db), "--pdf", str(tmp_path / "a-file" / "r.pdf"), timeout=120)
    assert refused.returncode == 1 and "a-file" in refused.stderr and "Traceback" not in refused.stderr
    window.review.export_report(tmp_path / "missing" / "report.pdf")
    assert "missing/report.pdf: the report was not written" in window.banner.text()
    assert not list((tmp_path / "missing").parent.glob("missing*"))  # nothing half-written
    settle(qtbot, window)


def test_a_long_status_message_ends_in_an_ellipsis_before_the_labels_and_is_whole_in_the_tooltip(qtbot, tmp_path):
    """A long message was cut off under the 'Research use only' label, its end unreadable."""
    from PySide6.QtWidgets import QLabel

    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    bar = window.statusBar()
    (label,) = [w for w in bar.findChildren(QLabel) if w.text().startswith("Research use only")]
    message = f"Saved {tmp_path}/{'a-long-folder-name/' * 12}worklist-report.pdf: 96 films, 40 reviewed"
    window.messages.status(message)
    bar.grab()  # painted
    assert bar.fontMetrics().horizontalAdvance(message) > label.x()  # longer than the room: else nothing to test
    shown = bar.shown_message()
    assert shown.endswith("\u2026") and message.startswith(shown[:-1])
    assert bar.message_room().right() < label.geometry().left() and label.isVisible()
    assert bar.toolTip() == message and bar.currentMessage() == message
    window.messages.status("Saved report.csv")
    bar.grab()
    assert bar.shown_message() == "Saved report.csv" and bar.toolTip() == ""
    settle(qtbot, window)


def test_the_pacs_tables_columns_show_their_whole_text(qtbot, tmp_path):
    """The PACS dock's columns were cut ('Descripti...')."""
    from xrayviewer.gui.pacs_dock import COLUMNS

    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    window.show_pacs_dock()
    query = window.pacs_query
    study = {"patient": "DOE^JANE", "patient_id": "PID-000123", "date": "20261206", "modalities": ["CR", "DX"],
             "description": "Chest PA and lateral, portable, follow-up", "images": 2, "accession": "ACC-2026-0042"}
    query.show_studies([study])
    metrics, header = query.table.fontMetrics(), query.table.horizontalHeader()
    for column, (_, title) in enumerate(COLUMNS):
        text = query.table.item(0, column).text()
        needed = max(metrics.horizontalAdvance(text), header.fontMetrics().horizontalAdvance(title))
        assert query.table.columnWidth(column) >= needed, (title, text)
    settle(qtbot, window)


def test_the_wait_message_goes_once_the_film_is_on_screen(qtbot, tmp_path, kermany):
    """A decision on a film still opening is refused with 'Wait: ...'; the message stayed after the film came."""
    window = reviewing(qtbot, tmp_path, kermany, 3)
    order = window.worklist.order()
    qtbot.waitUntil(lambda: on_screen(window) == order[0].info.path, timeout=30_000)
    window.worklist.select(order[1].id)  # asked for; its pixels are not on screen yet
    window.decide("pneumonia")
    assert window.statusBar().currentMessage().startswith("Wait:")
    qtbot.waitUntil(lambda: on_screen(window) == order[1].info.path and window.panes[0].analysis is not None,
                    timeout=30_000)
    assert not window.statusBar().currentMessage().startswith("Wait:")
    settle(qtbot, window)
