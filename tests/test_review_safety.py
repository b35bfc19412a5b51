"""Review mode as a reviewing radiologist uses it all day: the decision lands on the film on screen, nothing typed is
lost, undo, unread films, an unavailable provider. Real MainWindow (offscreen), real store, real films and model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from test_gui_review import on_screen, open_window, settle
from test_review_store import copy_films

from xrayviewer.core.review.store import ReviewStore


def shown(qtbot, window, path: str) -> None:
    """Wait until `path` is on screen with its analysis."""
    qtbot.waitUntil(lambda: on_screen(window) == path and window.panes[0].analysis is not None, timeout=30_000)


@pytest.fixture
def review(qtbot, tmp_path, kermany):
    """A window reviewing six films, the first on screen with its analysis; (window, db, folder). Each test ends
    with `settle`: pytest-qt closes the window before fixtures are torn down."""
    folder = tmp_path / "today"
    copy_films(kermany, folder, 6)
    db = tmp_path / "store" / "review.sqlite"
    window = open_window(qtbot, "mobilenetv2", db)
    window.review_paths([folder])
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == 6, timeout=60_000)
    shown(qtbot, window, window.worklist.current().info.path)  # the first film known while the list filled
    window.worklist.move("first")
    shown(qtbot, window, window.worklist.order()[0].info.path)
    return window, db, folder


def decisions(db: Path) -> dict[str, str]:
    with ReviewStore(db) as store:
        return {Path(f.info.path).name: f.decision.decision for f in store.films() if f.decision}


def test_a_film_opened_from_elsewhere_takes_no_decision_meant_for_the_worklist(qtbot, review, tmp_path, kermany):
    """Defect 1: on worklist film A, Ctrl+O another film; A's row stayed highlighted and 2 saved 'pneumonia' on A
    with A's AI result, though another film was on screen."""
    window, db, _ = review
    first = window.worklist.order()[0]
    other = tmp_path / "elsewhere" / "other.jpeg"
    other.parent.mkdir()
    shutil.copy(sorted((kermany / "PNEUMONIA").iterdir())[-1], other)  # not among the worklist's
    window.open_paths([other])
    shown(qtbot, window, str(other))
    assert window.worklist.current() is None  # no row claims the film on screen
    qtbot.keyClick(window.panes[0].view, Qt.Key.Key_2)
    assert decisions(db) == {}
    assert "not in the worklist" in window.banner.text()

    second = window.worklist.order()[1]  # a worklist film opened with File > Open: its row is chosen for it
    window.open_paths([second.info.path])
    shown(qtbot, window, second.info.path)
    assert window.worklist.current().id == second.id and first.id != second.id
    probability = window.panes[0].analysis.probability
    qtbot.keyClick(window.panes[0].view, Qt.Key.Key_2)
    with ReviewStore(db) as store:
        decided = {f.id: f.decision for f in store.films() if f.decision}
    assert list(decided) == [second.id]
    ai = next(iter(decided[second.id].ai_shown.values()))
    assert ai["on_screen"] and ai["probability"] == pytest.approx(probability)
    settle(qtbot, window)



def test_a_decision_waits_while_the_next_film_is_still_opening(qtbot, review):
    window, db, _ = review
    order = window.worklist.order()
    window.worklist.select(order[1].id)  # asked for; its pixels are not on screen yet
    assert on_screen(window) == order[0].info.path
    window.decide("pneumonia")
    assert decisions(db) == {} and "still opening" in window.statusBar().currentMessage()
    shown(qtbot, window, order[1].info.path)
    window.decide("pneumonia")
    assert decisions(db) == {Path(order[1].info.path).name: "pneumonia"}
    settle(qtbot, window)



def test_a_typed_note_follows_its_film_and_survives_moving_on_and_quitting(qtbot, review, tmp_path):
    """Defects 2 and 3: the note trapped 1-4, Esc did nothing, and Down or quitting lost what was typed."""
    window, db, _ = review
    order = window.worklist.order()
    view, note = window.panes[0].view, window.worklist.note
    qtbot.keyClick(view, Qt.Key.Key_N)
    assert note.hasFocus()
    qtbot.keyClicks(note, "left base")
    qtbot.keyClick(note, Qt.Key.Key_Down)  # moving on with the note unsaved
    shown(qtbot, window, order[1].info.path)
    assert note.text() == "" and not note.hasFocus()  # the next key is not typed into the next film's note
    with ReviewStore(db) as store:
        assert store.draft(order[0].id) == "left base"
    qtbot.keyClick(view, Qt.Key.Key_Up)
    shown(qtbot, window, order[0].info.path)
    assert note.text() == "left base"

    qtbot.keyClick(view, Qt.Key.Key_N)
    qtbot.keyClicks(note, " opacity")
    qtbot.keyClick(note, Qt.Key.Key_Escape)  # Esc: back to the film, the note kept
    assert not note.hasFocus()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_2)
    shown(qtbot, window, order[1].info.path)
    with ReviewStore(db) as store:
        film = store.film(order[0].id)
        assert film.decision.decision == "pneumonia" and film.decision.note == "left base opacity"
        assert store.draft(order[0].id) is None  # saved with the decision now

    qtbot.keyClick(view, Qt.Key.Key_N)  # Enter, then a decision key decides (it typed a digit before)
    qtbot.keyClicks(note, "clear")
    qtbot.keyClick(note, Qt.Key.Key_Return)
    assert not note.hasFocus()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_1)
    shown(qtbot, window, order[2].info.path)
    assert decisions(db)[Path(order[1].info.path).name] == "normal"

    qtbot.keyClick(view, Qt.Key.Key_N)
    qtbot.keyClicks(note, "typed, then quit")
    settle(qtbot, window)
    window.close()
    again = open_window(qtbot, "mobilenetv2", db)
    shown(qtbot, again, order[2].info.path)
    assert again.worklist.note.text() == "typed, then quit"
    settle(qtbot, again)



def test_undo_withdraws_the_last_decision_and_returns_to_its_film(qtbot, review):
    window, db, _ = review
    order = window.worklist.order()
    window.worklist.note.setText("query")
    qtbot.keyClick(window.panes[0].view, Qt.Key.Key_4)
    shown(qtbot, window, order[1].info.path)
    qtbot.keyClick(window.panes[0].view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    shown(qtbot, window, order[0].info.path)
    assert decisions(db) == {} and window.worklist.note.text() == "query"
    with ReviewStore(db) as store:
        history = store.history(order[0].id)
    assert [(d.decision, d.withdrawn_at is not None) for d in history] == [("other", True)]
    assert window.worklist.progress.text() == "0 of 6 reviewed"
    settle(qtbot, window)



def test_unread_only_next_unread_and_the_end_of_the_worklist(qtbot, review):
    window, db, _ = review
    order = window.worklist.order()
    view = window.panes[0].view
    for film in order[:5]:
        shown(qtbot, window, film.info.path)
        qtbot.keyClick(view, Qt.Key.Key_1)
    shown(qtbot, window, order[5].info.path)
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert window.statusBar().currentMessage() == "End of the worklist: 1 of 6 films still unread (U: next unread)"
    qtbot.keyClick(view, Qt.Key.Key_Home)
    shown(qtbot, window, order[0].info.path)
    qtbot.keyClick(view, Qt.Key.Key_U)
    shown(qtbot, window, order[5].info.path)
    window.worklist.unread_only.setChecked(True)
    assert [f.id for f in window.worklist.order()] == [order[5].id]
    assert window.worklist.current().id == order[5].id
    qtbot.keyClick(view, Qt.Key.Key_3)  # the last unread film: decided, the reader is told the list is done
    assert window.worklist.order() == []
    assert window.statusBar().currentMessage() == "End of the worklist: all 6 films reviewed"
    assert len(decisions(db)) == 6
    settle(qtbot, window)



def test_an_unavailable_provider_falls_back_once_and_later_films_are_analysed(qtbot, review):
    """Defect 5: picking cuda where it is missing failed every later film with a banner."""
    window, _, _ = review
    order = window.worklist.order()
    errors = []
    window.messages.errorShown.connect(errors.append)  # every banner, counted
    window.panel.provider.setCurrentText("cuda")
    assert window.engine.provider == "auto" and "CUDA was chosen but is unavailable" in window.engine.note
    assert window.panel.provider.currentText() == "auto"
    for film in order[1:4]:
        qtbot.keyClick(window.panes[0].view, Qt.Key.Key_Down)
        shown(qtbot, window, film.info.path)
        assert window.panes[0].analysis.label is not None
    assert len(errors) == 1 and "running on 'auto' instead" in errors[0]
    running = window.panel.running
    assert "CUDA was chosen but is unavailable" in running.text() and "#e0b050" in running.styleSheet()
    assert window.saved.provider() != "cuda"
    settle(qtbot, window)



def test_confirmations_stay_and_the_store_says_where_it_is(qtbot, review):
    window, db, _ = review
    window.messages.cursor("(120, 88)  value 143")  # the pixel under the cursor on this film
    qtbot.keyClick(window.panes[0].view, Qt.Key.Key_2)
    settle(qtbot, window)  # the next film's reading and analysis end: the confirmation stays
    assert window.cursor_label.text() == ""  # no stale pixel value from the film before
    assert "pneumonia saved" in window.statusBar().currentMessage()
    assert str(db) in window.worklist.store_label.text()


def test_the_first_film_shows_while_the_rest_fill_in_then_the_most_suspicious(qtbot, tmp_path, kermany):
    """Defect 6: nothing showed until all films were analysed, and rows then reordered under the reader. Issue 26:
    the film the reader was then left on was the first found, not the most suspicious (row 20 of the list)."""
    folder = tmp_path / "big"
    copy_films(kermany, folder, 96)
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    known = []
    window.worklist.filmChosen.connect(lambda film: known.append(len(window.worklist.table.films)))
    window.review_paths([folder])
    qtbot.waitUntil(lambda: window.panes[0].analysis is not None, timeout=30_000)
    first = window.worklist.current()
    assert first is not None and on_screen(window) == first.info.path
    assert known[0] < 96  # chosen and opened while the rest were still being analysed
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == 96, timeout=120_000)
    top = window.worklist.order()[0]
    assert top.suspicion() == max(f.suspicion() for f in window.worklist.table.films) and top.id != first.id
    qtbot.waitUntil(lambda: on_screen(window) == top.info.path, timeout=30_000)
    assert window.worklist.current().id == top.id
    settle(qtbot, window)


def test_a_reader_who_moved_while_the_worklist_filled_stays_where_they_are(qtbot, tmp_path, kermany):
    folder = tmp_path / "big"
    copy_films(kermany, folder, 96)
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    window.review_paths([folder])
    qtbot.waitUntil(lambda: window.panes[0].analysis is not None and len(window.worklist.table.films) >= 2,
                    timeout=30_000)
    assert len(window.worklist.table.films) < 96
    qtbot.keyClick(window.panes[0].view, Qt.Key.Key_Down)  # the reader moves on while the rest fill in
    qtbot.waitUntil(lambda: window.film is not None and window.film.id == window.worklist.current().id,
                    timeout=30_000)
    chosen = window.worklist.current()
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == 96, timeout=120_000)
    assert window.worklist.current().id == chosen.id and on_screen(window) == chosen.info.path
    settle(qtbot, window)


def test_review_mode_opens_from_the_command_line(tmp_path, kermany):
    import json
    import subprocess
    import sys

    folder = tmp_path / "today"
    copy_films(kermany, folder, 60)  # the screenshot is taken, and the viewer quits, while the rest still fill in
    db, png = tmp_path / "review.sqlite", tmp_path / "shot.png"
    done = subprocess.run([sys.executable, "-m", "xrayviewer", "--review", str(folder), "--db", str(db),
                           "--screenshot", str(png), "--provider", "cpu"], capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr
    assert png.stat().st_size > 10_000 and "propagateSizeHints" not in done.stderr
    assert "Traceback" not in done.stderr and "Signal source has been deleted" not in done.stderr
    with ReviewStore(db) as store:
        assert len(store.films()) >= 1 and json.loads(store.state("worklist_roots")) == [str(folder)]
    refused = subprocess.run([sys.executable, "-m", "xrayviewer", "--review"], capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "--review needs a folder" in refused.stderr


def test_the_worklist_shows_age_sex_and_accession_of_a_dicom_film(qtbot, tmp_path, dicom_data):
    import pydicom

    from xrayviewer.gui.worklist_view import COLUMNS

    folder = tmp_path / "dicom"
    folder.mkdir()
    ds = pydicom.dcmread(dicom_data / "RG1_J2KR.dcm")
    ds.PatientAge, ds.PatientSex, ds.AccessionNumber = "004Y", "F", "ACC-17"
    ds.save_as(folder / "child.dcm")
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    window.review_paths([folder])
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == 1, timeout=120_000)
    model = window.worklist.table
    row = {name: model.data(model.index(0, i)) for i, name in enumerate(COLUMNS)}
    assert row["Age/Sex"] == "4Y F" and row["Accession"] == "ACC-17" and row["ID"] == ds.PatientID
    assert window.worklist.view.isColumnHidden(COLUMNS.index("Accession"))  # shown from the header's menu
    window.worklist._show_column(COLUMNS.index("Accession"), True)
    assert "Accession" not in window.worklist.hidden_columns()
    settle(qtbot, window)
    window.close()
    again = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")  # the choice is kept with the store
    assert not again.worklist.view.isColumnHidden(COLUMNS.index("Accession"))
    settle(qtbot, again)


def test_percentages_and_the_first_window_fit(qtbot):
    from PySide6.QtCore import QRectF

    from xrayviewer.gui.app import first_geometry
    from xrayviewer.gui.worklist_view import bar_layout

    app = QApplication.instance()
    free = app.primaryScreen().availableGeometry()
    assert free.contains(first_geometry(app))  # a 1366 x 768 screen gets a window that fits, not 1500 x 950
    text, bar = bar_layout(QRectF(0, 0, 92, 22), 40)
    assert text.right() < bar.left()  # the threshold marker is drawn on the bar, never across the digits


def test_a_store_that_cannot_be_written_is_said_and_the_reader_stays_on_the_film(qtbot, review):
    window, db, _ = review
    on = on_screen(window)
    window.store.db.close()  # as if the disk went away: every write fails
    qtbot.keyClick(window.panes[0].view, Qt.Key.Key_2)
    assert "the decision 'pneumonia' was not saved" in window.banner.text() and str(db) in window.banner.text()
    assert on_screen(window) == on and window.worklist.current().info.path == on
    window.session.store = None  # the closed handle is not used again
    settle(qtbot, window)


def test_actual_pixels_stays_on_a_key_while_1_decides(qtbot, review):
    window, db, _ = review
    view = window.panes[0].view
    qtbot.keyClick(view, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert view.scale() == pytest.approx(1.0) and decisions(db) == {}
    settle(qtbot, window)
