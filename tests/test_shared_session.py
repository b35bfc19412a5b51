"""The reading session on a shared store, without Qt (issue 27 item 4): two readers' sessions (and a `review` command
process) on one real PostgreSQL server (a throw-away cluster: tests/pg_cluster.py), real chest films analysed by
the shipped model. The film on screen is claimed, renewed and given back; another reader's film is read-only; a
decision made elsewhere shows after a look; a server stopped mid-reading loses no note and takes no decision
unseen."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
from pg_cluster import running_cluster
from test_reading_session import MODEL, engine, loaded, recorder  # noqa: F401 - engine: the module's fixture
from test_review_store import copy_films

from xrayviewer.core.review.session import (
    WAIT_S,
    AnalysisSettings,
    NotSaved,
    PaneState,
    ReadingSession,
    Refused,
    SecondRead,
    clock,
)
from xrayviewer.core.review.store import ReviewStore
from xrayviewer.core.review.worklist import Worklist

PORTS = (47600, 47639)  # this suite's loopback ports (tests/test_gui_shared_store.py uses 47640-47689)


@pytest.fixture(scope="module")
def pg():
    yield from running_cluster(PORTS)


@pytest.fixture
def department(pg, tmp_path, kermany, engine):  # noqa: F811 - the fixture imported above
    """A new database on the server holding four analysed films; its URL."""
    url = pg.create(f"t{uuid.uuid4().hex[:12]}")
    with ReviewStore(url) as store:
        list(Worklist(store, engine, [MODEL]).run([copy_films(kermany, tmp_path / "today", 4)[0].parent]))
    return url


def reading(url: str, engine, name: str) -> ReadingSession:  # noqa: F811
    """A reader's session on the department's worklist (every film of the store), nothing on screen yet."""
    session = ReadingSession(engine, [PaneState(AnalysisSettings(MODEL))], url, reader=lambda: name)
    session.review_store()
    return session


def put_on_screen(session: ReadingSession, film_id: int) -> None:
    film = session.film_row(film_id)
    session.choose(film)
    assert session.show(*loaded(film.info.path), session.ask())


def look(session: ReadingSession) -> None:
    """One poll, as the window's timer makes it (there off the GUI thread)."""
    session.apply_news(session.fetch_news()())


def holders(url: str) -> dict[int, str]:
    with ReviewStore(url) as store:
        return {film_id: claim.reader for film_id, claim in store.claims().items()}


def test_the_film_on_screen_is_claimed_renewed_and_given_back(department, engine):  # noqa: F811
    ada = reading(department, engine, "Dr Ada")
    assert ada.shared and len(ada.films) == 4 and ada.place().startswith("127.0.0.1:")
    first, second = (f.id for f in ada.films[:2])
    put_on_screen(ada, first)
    assert holders(department) == {first: "Dr Ada"} and ada.read_only() == ""
    ada.lease_s = 3.0
    put_on_screen(ada, second)  # moved on undecided: the first is given back
    assert holders(department) == {second: "Dr Ada"}
    with ReviewStore(department) as store:
        before = store.claims()[second].expires_in
    time.sleep(1.2)  # more than a third of the lease
    look(ada)
    with ReviewStore(department) as store:
        assert store.claims()[second].expires_in > before - 0.5  # renewed, not running down
        assert [(e.reader, e.action) for e in store.events(first)] == [("Dr Ada", "claim"), ("Dr Ada", "release")]
    ada.type_note("left base")
    ada.decide("pneumonia")  # the decision ends the claim
    assert holders(department) == {} and ada.held is None
    put_on_screen(ada, first)
    ada.close()  # the window closes: nothing held is left behind
    assert holders(department) == {}


def test_another_readers_film_is_read_only_and_says_by_whom(department, engine):  # noqa: F811
    ada, bob = reading(department, engine, "Dr Ada"), reading(department, engine, "Dr Bob")
    film = ada.films[0].id
    put_on_screen(ada, film)
    held = recorder(bob.hold_changed)
    put_on_screen(bob, film)
    assert bob.holder == "Dr Ada" and bob.read_only() == "Being read by Dr Ada"
    assert [(f.id, holder) for f, holder in held] == [(film, "Dr Ada")] and bob.others() == {film: "Dr Ada"}
    with pytest.raises(Refused, match="Being read by Dr Ada: .* is open read-only; no decision was saved") as refused:
        bob.decide("normal")
    assert refused.value.banner and bob.decided == []
    bob.type_note("mine?")  # the field is disabled in the window; here: written nowhere
    with ReviewStore(department) as store:
        assert store.draft(film) is None and store.film(film).decision is None
    ada.decide("normal")
    look(bob)  # Ada let it go with her decision: Bob's screen now holds it, and shows her decision
    assert bob.holder is None and bob.held == film and bob.film_row(film).decision.reader == "Dr Ada"
    with pytest.raises(SecondRead, match=r"Dr Ada decided film\d+\.\w+: normal \("):  # only as a second read
        bob.decide("pneumonia")
    assert holders(department) == {film: "Dr Bob"}


def test_a_decision_by_another_reader_shows_after_a_look(department, engine):  # noqa: F811
    ada = reading(department, engine, "Dr Ada")
    changed, claims = recorder(ada.films_changed), recorder(ada.claims_changed)
    look(ada)
    assert changed == [] and claims  # nothing new: the films are not read again
    command = [sys.executable, "-m", "xrayviewer", "review"]
    taken = subprocess.run([*command, "next", "--db", department, "--reader", "Dr Carol"], capture_output=True,
                           text=True, timeout=120, check=True)
    film = int(taken.stdout.split('"film": ')[1].split(",")[0])
    look(ada)
    assert ada.others() == {film: "Dr Carol"}
    subprocess.run([*command, "decide", str(film), "--decision", "pneumonia", "--db", department, "--reader",
                    "Dr Carol"], capture_output=True, timeout=120, check=True)
    look(ada)
    assert ada.film_row(film).decision.reader == "Dr Carol" and ada.others() == {} and len(changed) == 1


def test_a_server_stopped_mid_reading_loses_no_note_and_takes_no_decision_unseen(pg, department, engine):  # noqa: F811
    ada = reading(department, engine, "Dr Ada")
    film = ada.films[0].id
    put_on_screen(ada, film)
    said = recorder(ada.connection_changed)
    ada.type_note("RLL")
    pg.stop()
    try:
        started = time.monotonic()
        ada.type_note("RLL ")  # before any look found the server gone: the reader waits a few seconds at most
        assert time.monotonic() - started < WAIT_S + 1.5 and ada.pending == {film: "RLL "} and len(said) == 1
        look(ada)
        assert len(said) == 1 and said[0][0]  # the driver's reason, said once
        assert "the shared worklist at 127.0.0.1:" in ada.unreachable_text()
        ada.type_note("RLL consolidation")  # kept here, not lost
        started = time.monotonic()
        with pytest.raises(NotSaved, match=r"The decision 'pneumonia' was not saved: the shared worklist at "
                                           r"127\.0\.0\.1:\d+ is unreachable: .* Retrying"):
            ada.decide("pneumonia")
        assert time.monotonic() - started < 1  # said at once: the reader is not kept waiting on a dead server
        assert ada.decided == [] and ada.pending == {film: "RLL consolidation"} and len(said) == 1
    finally:
        pg.start()
    deadline = time.monotonic() + 60
    while ada.unreachable and time.monotonic() < deadline:
        look(ada)
    assert said[-1] == ("",) and ada.pending == {}
    with ReviewStore(department) as store:
        assert store.draft(film) == "RLL consolidation" and store.claims()[film].reader == "Dr Ada"
    ada.decide("pneumonia")  # the reader decides again: now it lands, with the note
    with ReviewStore(department) as store:
        decision = store.film(film).decision
        assert (decision.decision, decision.note, decision.reader) == ("pneumonia", "RLL consolidation", "Dr Ada")


def test_a_reader_without_a_name_reads_until_named_then_holds_the_film(department, engine):  # noqa: F811
    name = {"now": ""}
    session = ReadingSession(engine, [PaneState(AnalysisSettings(MODEL))], department, reader=lambda: name["now"])
    session.review_store()
    film = session.films[0].id
    put_on_screen(session, film)
    assert session.read_only().startswith("Give your name") and holders(department) == {}
    with pytest.raises(Refused, match="Give your name"):
        session.decide("normal")
    name["now"] = "Dr Ada"
    session.renamed("")
    assert session.read_only() == "" and holders(department) == {film: "Dr Ada"}
    name["now"] = "Dr Ada Lovelace"  # corrected: held under the new name, not twice
    session.renamed("Dr Ada")
    assert holders(department) == {film: "Dr Ada Lovelace"}
    assert session.decide("normal").id == film and holders(department) == {}


def test_a_look_read_before_the_readers_own_decision_does_not_undo_it_on_screen(department, engine):  # noqa: F811
    ada = reading(department, engine, "Dr Ada")
    mine, other = ada.films[0].id, ada.films[1].id
    put_on_screen(ada, mine)
    with ReviewStore(department) as store:
        store.decide(other, "normal", reader="Dr Bob")
    news = ada.fetch_news()()  # the films as they were before Ada's decision (the look ran in the background)
    assert news.films is not None and next(f for f in news.films if f.id == mine).decision is None
    ada.decide("pneumonia")
    ada.apply_news(news)
    assert ada.film_row(mine).decision.decision == "pneumonia"  # not undone on screen by the older look
    look(ada)
    assert ada.film_row(other).decision.reader == "Dr Bob"


def history(url_or_path, film: int) -> tuple[list, list]:
    """The film's decisions (reader, decision, second read, withdrawn) and its history's decisions (reader, action,
    decision), oldest first."""
    with ReviewStore(url_or_path) as store:
        return ([(d.reader, d.decision, d.second_read, d.withdrawn_at is not None) for d in store.history(film)],
                [(e.reader, e.action, e.detail) for e in store.events(film)
                 if e.action in ("decide", "second read", "withdraw")])


def test_a_film_another_reader_decided_takes_a_second_read_only_when_asked(department, engine):  # noqa: F811
    carol, ada = reading(department, engine, "Dr Carol"), reading(department, engine, "Dr Ada")
    film = carol.films[0].id
    put_on_screen(carol, film)
    carol.type_note("RLL consolidation")
    carol.decide("pneumonia")
    look(ada)
    put_on_screen(ada, film)  # a decided film opens for reading again: Ada holds it, her note field shows Carol's note
    assert holders(department) == {film: "Dr Ada"} and ada.read_only() == "" and ada.note == "RLL consolidation"
    with pytest.raises(SecondRead) as asked:
        ada.decide("normal")
    with ReviewStore(department) as store:
        first = store.film(film).decision
    assert asked.value.first == first and asked.value.film.id == film
    assert asked.value.question() == (f"Dr Carol decided this film: pneumonia ({clock(first.decided_at)}). Record "
                                      "your reading as a second read?")
    assert history(department, film) == ([("Dr Carol", "pneumonia", False, False)],
                                         [("Dr Carol", "decide", "pneumonia")])  # asked, nothing written
    assert ada.decided == [] and ada.save_note("agree, RLL") == "kept"  # her note waits for her second read
    assert ada.decide("normal", second_read=True).id == film
    assert history(department, film) == ([("Dr Carol", "pneumonia", False, False), ("Dr Ada", "normal", True, False)],
                                         [("Dr Carol", "decide", "pneumonia"), ("Dr Ada", "second read", "normal")])
    with ReviewStore(department) as store:
        assert store.film(film).decision.note == "agree, RLL"
    look(ada)  # the film stays on screen, decided: a look does not claim it again
    assert holders(department) == {} and ada.film_row(film).decision.reader == "Dr Ada"
    ada.undo()  # her second read withdrawn: Carol's decision is the film's again
    assert ada.film_row(film).decision.reader == "Dr Carol"
    assert [d[3] for d in history(department, film)[0]] == [False, True]


def test_a_decision_made_elsewhere_since_the_films_were_read_asks_for_a_second_read(department, engine):  # noqa: F811
    ada = reading(department, engine, "Dr Ada")
    film = ada.films[1].id
    put_on_screen(ada, film)
    with ReviewStore(department) as store:  # Carol decides while Ada's lease has run out (no look renewed it)
        store.release(film, "Dr Ada")
        store.decide(film, "pneumonia", reader="Dr Carol")
    assert ada.film_row(film).decision is None  # Ada's rows are older than Carol's decision
    with pytest.raises(SecondRead, match="Dr Carol decided"):
        ada.decide("normal")
    assert ada.film_row(film).decision.reader == "Dr Carol"  # that film read again
    ada.decide("normal", second_read=True)
    assert history(department, film)[0] == [("Dr Carol", "pneumonia", False, False), ("Dr Ada", "normal", True, False)]


def test_after_a_decision_only_that_film_is_read_and_a_look_reads_the_rest(department, engine):  # noqa: F811
    ada = reading(department, engine, "Dr Ada")
    mine, other = ada.films[0].id, ada.films[1].id
    put_on_screen(ada, mine)
    read_all = []
    every_film = ada.store.films
    ada.store.films = lambda *a: (read_all.append(1), every_film(*a))[1]  # counts the reads of every film
    changed = recorder(ada.films_changed)
    with ReviewStore(department) as store:
        store.decide(other, "uncertain", reader="Dr Bob")
    news = ada.fetch_news()()  # a look begun before Ada's decision (it runs in the background) reads Bob's
    assert news.films is not None and read_all == [1]
    read_all.clear()
    ada.decide("pneumonia")
    assert read_all == [] and len(changed) == 1  # the window's thread read the one film
    assert ada.film_row(mine).decision.decision == "pneumonia" and ada.film_row(other).decision is None
    ada.apply_news(news)  # older than the decision: its films are not taken
    assert ada.film_row(mine).decision.decision == "pneumonia" and len(changed) == 1
    look(ada)  # the next look (the window makes it at once, off its thread) reads every film
    assert read_all == [1] and ada.film_row(other).decision.reader == "Dr Bob"
    assert ada.film_row(mine).decision.reader == "Dr Ada" and len(changed) == 2


def test_a_second_read_on_a_file_store(tmp_path, kermany, engine):  # noqa: F811
    folder = tmp_path / "today"
    copy_films(kermany, folder, 2)
    db = tmp_path / "review.sqlite"
    with ReviewStore(db) as store:
        list(Worklist(store, engine, [MODEL]).run([folder]))
        first, second = (f.id for f in store.films())
        store.decide(first, "pneumonia", reader="Dr Carol")
        store.decide(second, "normal", reader="")  # a decision before its reader gave a name: nobody else's
    ada = ReadingSession(engine, [PaneState(AnalysisSettings(MODEL))], db, reader=lambda: "Dr Ada")
    ada.set_worklist([folder])
    put_on_screen(ada, first)
    with pytest.raises(SecondRead, match="Dr Carol decided"):
        ada.decide("uncertain")
    ada.decide("uncertain", second_read=True)
    assert history(db, first) == ([("Dr Carol", "pneumonia", False, False), ("Dr Ada", "uncertain", True, False)],
                                  [("Dr Carol", "decide", "pneumonia"), ("Dr Ada", "second read", "uncertain")])
    put_on_screen(ada, second)
    ada.decide("pneumonia")  # the unnamed decision is decided again as before, without asking
    ada.decide("other")  # and her own too
    assert history(db, second)[0][1:] == [("Dr Ada", "pneumonia", False, False), ("Dr Ada", "other", False, False)]
    ada.close()
