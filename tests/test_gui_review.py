"""Review mode under pytest-qt: a real folder of chest films, a real review store, keys as the reader presses them."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from test_review_store import copy_films
from tiny_models import build

from xrayviewer.core.review.store import ReviewStore
from xrayviewer.gui.main_window import MainWindow


def settle(qtbot, *windows: MainWindow) -> None:
    """Let the windows' background work end before pytest-qt deletes the widgets it reports to."""
    for window in windows:
        qtbot.waitUntil(lambda w=window: not w.workers and not w._ahead, timeout=60_000)


@pytest.fixture
def reviewed(qtbot, tmp_path, kermany):
    """A window reviewing six films; returns (window, model, db, folder)."""
    folder = tmp_path / "today"
    copy_films(kermany, folder, 6)
    db = tmp_path / "store" / "review.sqlite"
    window = open_window(qtbot, "mobilenetv2", db)  # the shipped model: its probabilities spread the films
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.review_paths([folder])
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == 6, timeout=60_000)
    window.worklist.move("first")  # the film shown while the list filled was the first one found
    top = window.worklist.order()[0].info.path
    qtbot.waitUntil(lambda: on_screen(window) == top and window.panes[0].analysis is not None, timeout=20_000)
    return window, "mobilenetv2", db, folder


def open_window(qtbot, model: str | Path, db: Path) -> MainWindow:
    window = MainWindow("cpu", models=[str(model)], db=db)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    return window


def on_screen(window: MainWindow) -> str:
    return window.record.path if window.record else ""


def test_worklist_is_most_suspicious_first_and_keys_move_and_load(qtbot, reviewed):
    window, *_ = reviewed
    order = window.worklist.order()
    suspicion = [f.suspicion() for f in order]
    assert suspicion == sorted(suspicion, reverse=True) and len(set(suspicion)) > 1
    assert on_screen(window) == order[0].info.path
    assert window.worklist.progress.text() == "0 of 6 reviewed"
    view = window.panes[0].view
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: on_screen(window) == order[1].info.path, timeout=20_000)
    qtbot.keyClick(view, Qt.Key.Key_End)
    qtbot.waitUntil(lambda: on_screen(window) == order[-1].info.path, timeout=20_000)
    qtbot.keyClick(view, Qt.Key.Key_PageUp)
    qtbot.waitUntil(lambda: on_screen(window) == order[-2].info.path, timeout=20_000)
    qtbot.keyClick(view, Qt.Key.Key_Home)
    qtbot.waitUntil(lambda: on_screen(window) == order[0].info.path, timeout=20_000)
    qtbot.waitUntil(lambda: window.films.holds(order[1].info.path), timeout=20_000)  # decoded ahead
    settle(qtbot, window)


def test_decisions_persist_across_a_restart_and_the_reader_resumes(qtbot, reviewed):
    window, model, db, _ = reviewed
    order = window.worklist.order()
    view = window.panes[0].view
    qtbot.waitUntil(lambda: window.panes[0].analysis is not None, timeout=20_000)
    qtbot.keyClicks(window.worklist.reader, "Dr Ada")  # asked once, kept in the settings
    qtbot.keyClick(view, Qt.Key.Key_2)  # pneumonia, and on to the next film
    qtbot.waitUntil(lambda: on_screen(window) == order[1].info.path, timeout=20_000)
    window.worklist.note.setText("small effusion?")
    qtbot.keyClick(view, Qt.Key.Key_3)  # uncertain, with the note
    qtbot.waitUntil(lambda: on_screen(window) == order[2].info.path, timeout=20_000)
    assert window.worklist.progress.text() == "2 of 6 reviewed"
    window.close()

    with ReviewStore(db) as store:
        stored = {f.id: f.decision for f in store.films()}
    first = stored[order[0].id]
    assert first.decision == "pneumonia" and first.reader == "Dr Ada"
    assert next(iter(first.ai_shown.values()))["probability"] == pytest.approx(
        next(iter(order[0].results.values())).probability, abs=1e-4)
    assert stored[order[1].id].decision == "uncertain" and stored[order[1].id].note == "small effusion?"

    again = open_window(qtbot, model, db)  # a restart: new window, same store
    qtbot.waitUntil(lambda: on_screen(again) == order[2].info.path, timeout=20_000)  # where the reader left off
    assert again.worklist.progress.text() == "2 of 6 reviewed" and again.worklist.reader.text() == "Dr Ada"
    assert [f.decision.decision if f.decision else None for f in again.worklist.order()][:2] == [
        "pneumonia", "uncertain"]
    settle(qtbot, window, again)


def test_without_a_worklist_down_steps_through_the_study_browser(qtbot, tmp_path, kermany):
    folder = tmp_path / "films"
    paths = copy_films(kermany, folder, 3)
    window = open_window(qtbot, build(tmp_path / "tiny.onnx"), tmp_path / "review.sqlite")
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([folder])
    assert on_screen(window) == str(paths[0])
    qtbot.keyClick(window.panes[0].view, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: on_screen(window) == str(paths[1]), timeout=20_000)
    assert not (tmp_path / "review.sqlite").exists()  # browsing writes no review store
    settle(qtbot, window)


def test_a_folder_of_linked_films_fills_the_worklist(qtbot, tmp_path, kermany):
    """Films linked into the folder (a common way to gather a day's films) are listed under that folder."""
    originals = tmp_path / "archive"
    copy_films(kermany, originals, 3)
    folder = tmp_path / "today"
    folder.mkdir()
    for film in sorted(originals.iterdir()):
        (folder / film.name).symlink_to(film)
    window = open_window(qtbot, "mobilenetv2", tmp_path / "store" / "review.sqlite")
    window.review_paths([folder])
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == 3, timeout=60_000)
    assert all(Path(f.info.path).parent == folder for f in window.worklist.table.films)
    settle(qtbot, window)
