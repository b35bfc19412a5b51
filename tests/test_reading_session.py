"""The review rules in the Qt-free reading session: real store, real films read by the real readers, the shipped model
run by ONNX Runtime; no window. Each test drives the session as the GUI's parts do (ask, show, choose, decide)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_review_store import copy_films

from xrayviewer.core.analysis.engine import engine_for
from xrayviewer.core.reading.display import to_display
from xrayviewer.core.reading.reader import read_image
from xrayviewer.core.review.session import (AnalysisSettings, NotSaved, PaneState, ReadingSession, Refused,
                                            films_text)
from xrayviewer.core.review.store import ReviewStore
from xrayviewer.core.review.worklist import Worklist

MODEL = "mobilenetv2"


@pytest.fixture(scope="module")
def engine():
    engine = engine_for("cpu")
    yield engine
    engine.close()


@pytest.fixture
def session(tmp_path, kermany, engine):
    """A session whose worklist is four analysed films; the first is chosen and on screen."""
    folder = tmp_path / "today"
    copy_films(kermany, folder, 4)
    db = tmp_path / "review.sqlite"
    session = ReadingSession(engine, [PaneState(AnalysisSettings(MODEL)), PaneState(AnalysisSettings(MODEL))], db,
                             reader=lambda: "Dr Ada")
    session.set_worklist([folder])
    list(Worklist(session.store, engine, [MODEL]).run(session.roots))
    session.reload()
    assert len(session.films) == 4
    put_on_screen(session, session.films[0])
    return session


def put_on_screen(session: ReadingSession, film) -> None:
    session.choose(film)
    assert session.show(*loaded(film.info.path), session.ask())


def loaded(path):
    record = read_image(path)
    return record, to_display(record)


def recorder(event) -> list:
    seen = []
    event.connect(lambda *args: seen.append(args))
    return seen


def stored(session: ReadingSession) -> dict[int, str]:
    with ReviewStore(session.db_path) as store:
        return {f.id: f.decision.decision for f in store.films() if f.decision}


def test_a_decision_lands_on_the_film_on_screen_with_its_note_and_reader(session):
    a = session.films[0]
    recorded = recorder(session.decision_recorded)
    session.type_note("left base")
    assert session.decide("pneumonia").id == a.id
    assert stored(session) == {a.id: "pneumonia"}
    with ReviewStore(session.db_path) as store:
        decision = store.film(a.id).decision
        assert (decision.note, decision.reader) == ("left base", "Dr Ada") and store.draft(a.id) is None
    assert next(iter(decision.ai_shown.values()))["on_screen"] is False  # no pane had its result yet
    assert [(film.id, made.decision) for film, made in recorded] == [(a.id, "pneumonia")]


def test_a_film_asked_for_but_not_on_screen_takes_no_decision(session):
    a, b = session.films[:2]
    session.choose(b)  # its row is chosen, its pixels are still being read
    generation = session.ask()
    with pytest.raises(Refused, match="still opening") as refused:
        session.decide("normal")
    assert not refused.value.banner and stored(session) == {}
    assert session.show(*loaded(b.info.path), generation)
    assert session.decide("normal").id == b.id and stored(session) == {b.id: "normal"}
    assert a.id not in stored(session)


def test_a_slower_earlier_read_is_not_shown(session):
    a, b, c = session.films[:3]
    first = session.ask()
    session.ask()  # the reader moved on before the first read ended
    assert not session.show(*loaded(b.info.path), first)
    assert Path(session.record.path) == Path(a.info.path) and session.film.id == a.id


def test_a_film_opened_from_elsewhere_takes_no_decision_and_no_note(session, tmp_path, kermany):
    other = copy_films(kermany, tmp_path / "elsewhere", 1, start=40)[0]
    notes = recorder(session.note_shown)
    assert session.show(*loaded(other), session.ask())
    assert session.film is None and session.chosen is None and notes == [(None, "")]
    with pytest.raises(Refused, match="not in the worklist") as refused:
        session.decide("pneumonia")
    assert refused.value.banner and stored(session) == {}
    with pytest.raises(Refused, match="Marks are saved with a worklist film"):
        session.save_marks([])
    session.type_note("lost?")  # the field is disabled in the window; here: written nowhere
    with ReviewStore(session.db_path) as store:
        assert all(store.draft(f.id) is None for f in session.films)


def test_a_worklist_film_opened_from_elsewhere_becomes_the_chosen_one(session):
    c = session.films[2]
    assert session.show(*loaded(c.info.path), session.ask())  # File > Open of a worklist film
    assert session.chosen == c.id and session.decide("other").id == c.id


def test_undo_withdraws_the_last_decision_and_its_note_comes_back_as_a_draft(session):
    a, b = session.films[:2]
    session.type_note("query")
    session.decide("other")
    put_on_screen(session, b)
    session.decide("normal")
    undone = recorder(session.decision_undone)
    film, film_id, withdrawn = session.undo()
    assert (film_id, withdrawn.decision) == (b.id, "normal") and stored(session) == {a.id: "other"}
    film, film_id, withdrawn = session.undo()
    assert (film_id, withdrawn.decision, withdrawn.note) == (a.id, "other", "query") and stored(session) == {}
    assert [w.decision for _, w in undone] == ["normal", "other"]
    with ReviewStore(session.db_path) as store:
        assert store.draft(a.id) == "query" and [d.withdrawn_at is not None for d in store.history(a.id)] == [True]
    with pytest.raises(Refused, match="No decision of this session"):
        session.undo()
    put_on_screen(session, a)
    assert session.note == "query"  # shown again with its film


def test_a_note_is_a_draft_at_every_change_and_follows_its_film(session):
    a, b = session.films[:2]
    kept = recorder(session.draft_kept)
    for text in ("R", "RL", "RLL"):
        session.type_note(text)
        with ReviewStore(session.db_path) as store:  # another connection, as after a crash
            assert store.draft(a.id) == text
    assert [t for _, t in kept] == ["R", "RL", "RLL"]
    put_on_screen(session, b)
    assert session.note == ""
    put_on_screen(session, a)
    assert session.note == "RLL"
    assert session.save_note("RLL effusion") == "kept"  # undecided: kept as a draft until the decision
    session.decide("pneumonia")
    put_on_screen(session, a)
    assert session.save_note("RLL effusion, small") == "saved"  # decided: saved with its decision at once
    with ReviewStore(session.db_path) as store:
        film = store.film(a.id)
        assert (film.decision.decision, film.decision.note) == ("pneumonia", "RLL effusion, small")
        assert store.draft(a.id) is None


def test_a_store_that_refuses_writes_is_said_and_nothing_changes(session):
    session.store.db.close()  # as if the disk went away
    with pytest.raises(NotSaved, match=r"review\.sqlite: the decision 'normal' was not saved"):
        session.decide("normal")
    assert session.decided == []
    with pytest.raises(NotSaved, match="the note was not saved"):
        session.type_note("x")


def test_the_end_of_the_worklist_and_the_panes(session):
    assert session.end_text() == "End of the worklist: 4 of 4 films still unread (U: next unread)"
    for film in session.films:
        put_on_screen(session, film)
        session.decide("normal")
    assert session.end_text() == "End of the worklist: all 4 films reviewed" and films_text(1) == "1 film"
    changed = recorder(session.pane_changed)
    second = session.panes[1]
    session.set_compare(True)
    session.set_active(second)
    session.set_settings(second, AnalysisSettings(MODEL, "gradcam"))
    assert session.visible_panes() == session.panes and changed == [(second,)]
    session.set_compare(False)
    assert session.active is session.panes[0] and session.visible_panes() == session.panes[:1]


def test_the_session_imports_no_qt():
    code = ("import sys, xrayviewer.core.review.session\n"
            "print([m for m in sys.modules if m.startswith(('PySide6', 'shiboken6'))])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
