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
from pg_cluster import Cluster, binaries, free_port
from test_reading_session import MODEL, engine, loaded, recorder  # noqa: F401 - engine: the module's fixture
from test_review_store import copy_films

from xrayviewer.core.review.session import WAIT_S, AnalysisSettings, NotSaved, PaneState, ReadingSession, Refused
from xrayviewer.core.review.store import ReviewStore
from xrayviewer.core.review.worklist import Worklist

PORTS = (47100, 47139)  # this helper's loopback ports (tests/test_gui_shared_store.py uses 47140-47179)


@pytest.fixture(scope="module")
def pg():
    if binaries() is None:
        pytest.skip("PostgreSQL's server programs (initdb, postgres) are not installed: apt-get install postgresql")
    cluster = Cluster(free_port(*PORTS)).start()
    yield cluster
    cluster.remove()


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
    with pytest.raises(Refused, match="Dr Ada decided it"):  # a second read is the review command's
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
