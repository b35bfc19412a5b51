"""The viewer on a department's shared worklist (issue 27 item 4) under pytest-qt: a real window on a real PostgreSQL
server (a throw-away cluster: tests/pg_cluster.py), real chest films analysed by the shipped model, and a second
reader as `xrayviewer review` command processes. The film on screen is claimed; another reader's film opens
read-only and says by whom; their decision shows after the poll; a server stopped mid-reading is a banner, the
window never freezes, and once the server is back the note typed meanwhile and the decision land."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from pg_cluster import free_port, running_cluster
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox
from test_gui_review import open_window, settle
from test_review_store import copy_films

from xrayviewer.core.analysis.engine import engine_for
from xrayviewer.core.review.session import clock
from xrayviewer.core.review.store import ReviewStore
from xrayviewer.core.review.worklist import Worklist
from xrayviewer.gui.settings import Settings
from xrayviewer.gui.worklist_view import COLUMNS

PORTS = (47640, 47679)  # this suite's loopback ports (47680-47689: a port nothing listens on;
# tests/test_shared_session.py uses 47600-47639)
MODEL = "mobilenetv2"
FILMS = 5


@pytest.fixture(scope="module")
def pg():
    yield from running_cluster(PORTS)


@pytest.fixture(autouse=True)
def reader_name_kept():
    """The reader's name in the settings (shared by the tests of one run) as it was before each test."""
    before = Settings().reader()
    yield
    Settings().set_reader(before)


@pytest.fixture
def department(pg, tmp_path, kermany):
    """A new database on the server holding FILMS analysed films; its URL."""
    url = pg.create(f"t{uuid.uuid4().hex[:12]}")
    engine = engine_for("cpu")
    with ReviewStore(url) as store:
        list(Worklist(store, engine, [MODEL]).run([copy_films(kermany, tmp_path / "today", FILMS)[0].parent]))
    engine.close()
    return url


def review(*args: str) -> dict:
    """Another reader at another workstation: one `xrayviewer review` command."""
    done = subprocess.run([sys.executable, "-m", "xrayviewer", "review", *args], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout)


def reading(qtbot, url: str):
    """Dr Ada's window on the department's worklist (no folder), the first film on screen with its analysis."""
    Settings().set_reader("Dr Ada")
    window = open_window(qtbot, MODEL, url)
    window.review.review_store()
    qtbot.waitUntil(lambda: len(window.worklist.table.films) == FILMS and window.film is not None
                    and window.panes[0].analysis is not None, timeout=60_000)
    return window


def holders(url: str) -> dict[int, str]:
    with ReviewStore(url) as store:
        return {film_id: claim.reader for film_id, claim in store.claims().items()}


def cell(window, film_id: int, column: str, role=Qt.ItemDataRole.DisplayRole) -> str:
    table = window.worklist.table
    row = next(i for i, f in enumerate(table.films) if f.id == film_id)
    return table.data(table.index(row, COLUMNS.index(column)), role)


def tip(window, film_id: int, column: str) -> str:
    return cell(window, film_id, column, Qt.ItemDataRole.ToolTipRole)


def test_the_film_on_screen_is_claimed_and_another_readers_film_is_read_only(qtbot, department):
    bob = review("next", "--db", department, "--reader", "Dr Bob")["film"]  # the most suspicious film
    window = reading(qtbot, department)
    ada = window.film.id
    assert ada != bob and holders(department) == {ada: "Dr Ada", bob: "Dr Bob"}  # the first film nobody reads
    assert not window.worklist.view.isColumnHidden(COLUMNS.index("Reader"))
    assert (cell(window, bob, "Review"), cell(window, bob, "Reader")) == ("reading", "Dr Bob")
    assert (cell(window, ada, "Review"), cell(window, ada, "Reader")) == ("reading (you)", "Dr Ada")
    assert tip(window, ada, "Reader") == "Being read by Dr Ada (you)"
    assert "***@127.0.0.1" in window.worklist.store_label.text()  # the URL's password is never shown
    assert all(button.isEnabled() for button in window.worklist.buttons) and window.worklist.note.isEnabled()

    window.worklist.select(bob)  # the reader opens Bob's film: read-only, and says by whom
    qtbot.waitUntil(lambda: window.film is not None and window.film.id == bob and window.worklist.held.isVisible(),
                    timeout=20_000)
    assert window.worklist.held.text() == "Being read by Dr Bob"
    assert not any(button.isEnabled() for button in window.worklist.buttons) and not window.worklist.note.isEnabled()
    assert holders(department) == {bob: "Dr Bob"}  # Ada's film given back as she moved on undecided
    view = window.panes[0].view
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_2)
    assert window.banner.isVisible() and window.banner.text().startswith("Being read by Dr Bob")
    with ReviewStore(department) as store:
        assert store.film(bob).decision is None

    qtbot.keyClick(view, Qt.Key.Key_U)  # the next unread film nobody else reads
    qtbot.waitUntil(lambda: window.film is not None and window.film.id != bob, timeout=20_000)
    mine = window.film.id
    qtbot.waitUntil(lambda: holders(department) == {bob: "Dr Bob", mine: "Dr Ada"}, timeout=10_000)
    assert not window.worklist.held.isVisible() and all(b.isEnabled() for b in window.worklist.buttons)

    review("decide", str(bob), "--decision", "pneumonia", "--db", department, "--reader", "Dr Bob")
    qtbot.waitUntil(lambda: cell(window, bob, "Review") == "pneumonia", timeout=20_000)  # after the poll
    assert cell(window, bob, "Reader") == "Dr Bob" and window.worklist.progress.text() == f"1 of {FILMS} reviewed"

    qtbot.keyClick(view, Qt.Key.Key_1)  # Ada decides her film: committed, the claim ends, on to the next
    qtbot.waitUntil(lambda: window.film is not None and window.film.id not in (mine, bob), timeout=20_000)
    with ReviewStore(department) as store:
        assert (store.film(mine).decision.decision, store.film(mine).decision.reader) == ("normal", "Dr Ada")
    following = window.film.id
    qtbot.waitUntil(lambda: holders(department) == {following: "Dr Ada"}, timeout=10_000)
    window.close()  # nothing held is left behind
    assert holders(department) == {}
    settle(qtbot, window)


def test_a_server_stopped_mid_reading_is_a_banner_and_the_note_and_decision_land_after(qtbot, pg, department):
    window = reading(qtbot, department)
    film = window.film.id
    qtbot.waitUntil(lambda: holders(department) == {film: "Dr Ada"}, timeout=10_000)
    window.worklist.note.setText("RLL")
    ticks: list[float] = []  # the window's own clock: a frozen window stops it
    clock = QTimer(window)
    clock.timeout.connect(lambda: ticks.append(time.monotonic()))
    clock.start(100)
    banner = window.review.watch.banner
    pg.stop()
    try:
        qtbot.waitUntil(banner.isVisible, timeout=30_000)
        assert banner.text().startswith(f"The shared worklist at 127.0.0.1:{pg.port} is unreachable: ")
        assert "Retrying" in banner.text() and pg.password not in banner.text()
        window.worklist.note.setText("RLL consolidation")  # typed while the server is away: kept
        view = window.panes[0].view
        view.setFocus()
        qtbot.keyClick(view, Qt.Key.Key_2)  # refused at once, not shown as made
        assert "The decision 'pneumonia' was not saved: the shared worklist at" in window.banner.text()
        assert window.film.id == film and window.worklist.progress.text() == f"0 of {FILMS} reviewed"
        qtbot.wait(4000)  # a look or two more against the dead server
    finally:
        pg.start()
    qtbot.waitUntil(lambda: not banner.isVisible(), timeout=60_000)
    clock.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert max(gaps) < 1.0  # the looks at the dead server waited in the background, not in the window
    with ReviewStore(department) as store:
        assert store.draft(film) == "RLL consolidation" and store.claims()[film].reader == "Dr Ada"
    qtbot.keyClick(window.panes[0].view, Qt.Key.Key_2)  # decided again: now it lands, with the note
    qtbot.waitUntil(lambda: window.worklist.progress.text() == f"1 of {FILMS} reviewed", timeout=20_000)
    with ReviewStore(department) as store:
        decision = store.film(film).decision
        assert (decision.decision, decision.note, decision.reader) == ("pneumonia", "RLL consolidation", "Dr Ada")
    window.close()
    settle(qtbot, window)


def test_a_folder_reviewed_on_the_shared_store_adds_its_films_there(qtbot, department, tmp_path, kermany):
    folder = tmp_path / "ward"
    copy_films(kermany, folder, 2, start=FILMS)
    Settings().set_reader("Dr Ada")
    window = open_window(qtbot, MODEL, department)
    window.review_paths([folder])
    qtbot.waitUntil(lambda: not window.workers and len(window.worklist.table.films) == 2 and window.film is not None,
                    timeout=60_000)
    film = window.film.id
    qtbot.waitUntil(lambda: holders(department) == {film: "Dr Ada"}, timeout=10_000)
    with ReviewStore(department) as store:
        assert len(store.films()) == FILMS + 2
    review_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Review")
    next(a for a in review_menu.actions() if a.text() == "Shared worklist (every film)").trigger()
    qtbot.waitUntil(lambda: len(window.worklist.table.films) == FILMS + 2, timeout=20_000)  # the department's
    window.close()
    settle(qtbot, window)


def test_the_viewer_opens_the_department_worklist_from_the_command_line(department, tmp_path):
    """`$XRAYVIEWER_DB` naming the server and `--review` with no folder: the worklist is every film in the store."""
    picture = tmp_path / "shared.png"
    env = {**os.environ, "XRAYVIEWER_DB": department, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-m", "xrayviewer", "--review", "--screenshot", str(picture)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert picture.stat().st_size > 10_000 and department.split(":")[2].split("@")[0] not in done.stderr
    with ReviewStore(department) as store:
        assert store.claims() == {}  # the window closed: its film given back
    no_folder = subprocess.run([sys.executable, "-m", "xrayviewer", "--review", "--db", str(tmp_path / "r.sqlite")],
                               capture_output=True, text=True, timeout=120)
    assert no_folder.returncode == 2 and "--review needs a folder (or files) to review, or a shared store" in \
        no_folder.stderr
    nobody = f"postgresql://postgres:hush{uuid.uuid4().hex[:6]}@127.0.0.1:{free_port(47680, 47689)}/x"
    down = subprocess.run([sys.executable, "-m", "xrayviewer", "--review", "--db", nobody, "--screenshot",
                           str(tmp_path / "down.png")], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 1 and "cannot use the review database: connection failed" in down.stderr
    assert nobody.split(":")[2].split("@")[0] not in down.stderr and "postgres:***@127.0.0.1" in down.stderr


def test_a_second_read_from_the_viewer_is_asked_once_and_lands_beside_the_first(qtbot, monkeypatch, department):
    carol = review("next", "--db", department, "--reader", "Dr Carol Shaw-Whitfield")["film"]
    review("decide", str(carol), "--decision", "pneumonia", "--note", "RLL", "--db", department, "--reader",
           "Dr Carol Shaw-Whitfield")
    with ReviewStore(department) as store:
        first = store.film(carol).decision
    window = reading(qtbot, department)
    assert (cell(window, carol, "Review"), cell(window, carol, "Reader")) == ("pneumonia", "Dr Carol Shaw-Whitfield")
    assert tip(window, carol, "Reader") == f"Decided by Dr Carol Shaw-Whitfield: pneumonia ({clock(first.decided_at)})"
    reader_column = COLUMNS.index("Reader")
    assert window.worklist.view.columnWidth(reader_column) >= window.worklist.view.fontMetrics().horizontalAdvance(
        "Dr Grace Hopper")
    window.worklist.select(carol)  # Ada opens the film Carol decided: hers to read again (she holds it)
    qtbot.waitUntil(lambda: window.film is not None and window.film.id == carol, timeout=20_000)
    qtbot.waitUntil(lambda: holders(department) == {carol: "Dr Ada"}, timeout=10_000)
    assert all(button.isEnabled() for button in window.worklist.buttons)
    asked: list[str] = []
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: (asked.append(text),
                                                                                   answers.pop(0))[1])
    view = window.panes[0].view
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_1)  # No: Carol's decision stays the film's, nothing written, still on screen
    question = (f"Dr Carol Shaw-Whitfield decided this film: pneumonia ({clock(first.decided_at)}). Record your "
                "reading as a second read?")
    assert asked == [question] and window.film.id == carol
    assert "Dr Carol Shaw-Whitfield's decision left as it is; no second read saved" in window.messages.current()
    with ReviewStore(department) as store:
        assert [(d.reader, d.decision) for d in store.history(carol)] == [("Dr Carol Shaw-Whitfield", "pneumonia")]
    window.worklist.note.setText("agree")
    qtbot.keyClick(view, Qt.Key.Key_1)  # Yes: recorded as Ada's second read, beside Carol's, and on to the next film
    assert asked == [question, question]
    qtbot.waitUntil(lambda: window.film is not None and window.film.id != carol, timeout=20_000)
    with ReviewStore(department) as store:
        assert [(d.reader, d.decision, d.note, d.second_read) for d in store.history(carol)] == [
            ("Dr Carol Shaw-Whitfield", "pneumonia", "RLL", False), ("Dr Ada", "normal", "agree", True)]
        assert [(e.reader, e.action, e.detail) for e in store.events(carol) if e.action != "claim"] == [
            ("Dr Carol Shaw-Whitfield", "decide", "pneumonia"), ("Dr Ada", "second read", "normal")]
    assert (cell(window, carol, "Review"), cell(window, carol, "Reader")) == ("normal", "Dr Ada")
    assert tip(window, carol, "Reader").startswith("Second read by Dr Ada: normal (")
    assert window.worklist.progress.text() == f"1 of {FILMS} reviewed"
    window.close()
    settle(qtbot, window)


def test_after_a_decision_the_other_readers_decisions_come_from_the_background_look(qtbot, department):
    window = reading(qtbot, department)
    mine = window.film.id
    other = next(f.id for f in window.worklist.table.films if f.id != mine)
    review("decide", str(other), "--decision", "uncertain", "--db", department, "--reader", "Dr Bob")
    window.review.watch.timer.setInterval(600_000)  # no look of the timer's own from now on: only the decision's
    qtbot.waitUntil(lambda: window.review.watch.looking is None, timeout=20_000)
    store, main, on_main = window.session.store, threading.get_ident(), []
    every_film = store.films
    store.films = lambda *a: (on_main.append(threading.get_ident() == main), every_film(*a))[1]  # who reads them all
    view = window.panes[0].view
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_2)
    assert cell(window, mine, "Review") == "pneumonia" and True not in on_main  # at once, from the one film read
    qtbot.waitUntil(lambda: cell(window, other, "Review") == "uncertain", timeout=20_000)  # by the look it asked for
    assert on_main and not any(on_main) and cell(window, other, "Reader") == "Dr Bob"
    window.close()
    settle(qtbot, window)


def test_the_worklist_moves_only_the_rows_that_changed(qtbot, department):
    """A look brings the same films with one decided and one analysed again: the rows move and hide as they would
    after a reset (sorted by AI, unread only), the selection stays, and the table is not reset (every row sorted
    again through Python: seconds in a store of thousands of films)."""
    from dataclasses import replace

    from xrayviewer.core.review.store import Decision
    from xrayviewer.gui.worklist_view import WorklistView

    with ReviewStore(department) as store:
        films = store.films()
    view = WorklistView()
    qtbot.addWidget(view)
    view.set_films(films, MODEL)
    view.unread_only.setChecked(True)
    order = view.order()
    assert [f.suspicion() for f in order] == sorted((f.suspicion() for f in order), reverse=True)
    top, chosen, last = order[0], order[2], order[-1]
    view.select(chosen.id, emit=False)
    resets = []
    view.table.modelReset.connect(lambda: resets.append(1))
    result = replace(next(iter(last.results.values())), probability=1.0)
    looked = [replace(f) for f in films]  # new rows, as a look reads them
    looked = [replace(f, decision=Decision("normal", "", "Dr Bob", "2026-12-06T10:00:00+00:00", {}))
              if f.id == top.id else replace(f, results={MODEL: result}) if f.id == last.id else f for f in looked]
    view.set_films(looked, MODEL)
    assert resets == [] and view.current().id == chosen.id
    assert [f.id for f in view.order()] == [last.id] + [f.id for f in order[1:-1]]  # top decided: hidden
    view.table.set_reading({}, "Dr Ada")  # the reader named: every row (whose is whose changed)
    announced = []
    view.table.dataChanged.connect(lambda first, last: announced.append((first.row(), last.row())))
    view.table.set_reading({chosen.id: "Dr Bob"}, "Dr Ada")  # a claim: its row's Review and Reader cells only
    row = next(i for i, f in enumerate(view.table.films) if f.id == chosen.id)
    assert announced == [(row, row)] and view.table.data(view.table.index(row, 0)) == "reading"
    view.set_films([f for f in looked if f.id != last.id], MODEL)  # a film fewer: reset
    assert resets == [1] and last.id not in [f.id for f in view.order()]
