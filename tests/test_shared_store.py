"""The review store shared by readers and nodes (issue 27): claims with leases, decisions only from the holder,
second reads, the history, `review` and `store copy`, on a SQLite file AND on a real PostgreSQL server (a throw-away
cluster made by initdb in a temporary folder, on a loopback port: tests/pg_cluster.py). The PostgreSQL half skips
only where PostgreSQL's server programs are not installed (.ci/run installs them)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from urllib.parse import urlsplit

import pytest
from pg_cluster import running_cluster
from test_review_store import copy_films

from xrayviewer.core.review.migrations import migrate
from xrayviewer.core.review.store import NEXT_UNREAD, ClaimRefused, FilmInfo, Mark, ModelResult, ReviewStore, location
from xrayviewer.core.review.store_sql import SqliteBackend, masked, open_backend

PORTS = (47200, 47249)  # this suite's loopback ports (the benchmark uses 47250-47299)


def xrayviewer(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, timeout=300,
                          **kwargs)


@pytest.fixture(scope="module")
def pg():
    yield from running_cluster(PORTS)


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path) -> str:
    """A new, empty store's location: a SQLite file, or a database of its own on the test server."""
    if request.param == "sqlite":
        return str(tmp_path / "review.sqlite")
    return request.getfixturevalue("pg").create(f"t{uuid.uuid4().hex[:12]}")


def add_films(store: ReviewStore, probabilities: list[float | None], folder: str = "/films") -> list[int]:
    return [store.put_film(FilmInfo(f"{folder}/{i:04d}.png", 100 + i, i, f"{i:064x}"),
                           [] if p is None else [ModelResult("m", "h", probability=p, label="x", threshold=0.5)])
            for i, p in enumerate(probabilities)]


def test_claims_hand_each_film_to_one_reader_most_suspicious_first(where):
    with ReviewStore(where) as store:
        ids = add_films(store, [0.2, 0.9, None, 0.5])
        assert store.counts() == {"films": 4, "decided": 0, "claimed": 0, "unread": 4}
        anna = store.claim_next("Dr Anna", 60)
        bob = store.claim_next("Dr Bob", 60)
        assert (anna.id, bob.id) == (ids[1], ids[3])  # 0.9, then 0.5
        assert store.claim_next("Dr Anna", 60).id == anna.id  # she holds it still: handed back to her
        assert store.counts() == {"films": 4, "decided": 0, "claimed": 2, "unread": 2}
        with pytest.raises(ClaimRefused, match=r"the decision was not taken: Dr Anna is reading it"):
            store.decide(anna.id, "normal", reader="Dr Bob")
        with pytest.raises(ClaimRefused, match="Dr Bob is reading it"):
            store.claim(bob.id, "Dr Anna")
        store.decide(anna.id, "pneumonia", "RLL", "Dr Anna")
        assert anna.id not in store.claims() and store.film(anna.id).decision.reader == "Dr Anna"
        assert store.claim_next("Dr Anna", 60).id == ids[0]  # 0.2; the unanalysed film comes last
        assert store.claim_next("Dr Carol", 60).id == ids[2]
        assert store.claim_next("Dr Dan", 60) is None
        assert store.release(ids[2], "Dr Carol") and store.claim_next("Dr Dan", 60).id == ids[2]
        assert [(e.reader, e.action) for e in store.events(ids[2])] == [
            ("Dr Carol", "claim"), ("Dr Carol", "release"), ("Dr Dan", "claim")]
        assert [(e.reader, e.action, e.detail) for e in store.events(anna.id)] == [
            ("Dr Anna", "claim", ""), ("Dr Anna", "decide", "pneumonia")]


def test_a_lapsed_lease_lets_the_film_go_to_the_next_reader(where):
    with ReviewStore(where) as store:
        (film,) = add_films(store, [0.7])
        assert store.claim_next("Dr Anna", 1.0).id == film
        assert store.claim_next("Dr Bob", 60) is None
        assert store.renew(film, "Dr Anna", 1.0)  # on screen: renewed
        time.sleep(1.3)  # her workstation died: nothing renews it
        assert store.counts()["claimed"] == 0 and store.claims() == {}
        assert store.claim_next("Dr Bob", 60).id == film
        assert not store.renew(film, "Dr Anna")  # hers no longer
        with pytest.raises(ClaimRefused, match="Dr Bob is reading it"):
            store.decide(film, "normal", reader="Dr Anna")
        store.decide(film, "normal", reader="Dr Bob")
        assert [(e.reader, e.action, e.detail) for e in store.events(film)] == [
            ("Dr Anna", "claim", ""), ("Dr Bob", "claim", "Dr Anna's lease had run out"),
            ("Dr Bob", "decide", "normal")]


def test_another_readers_decision_takes_an_explicit_second_read(where):
    with ReviewStore(where) as store:
        film, other = add_films(store, [0.8, 0.1])
        store.decide(film, "pneumonia", "", "Dr Anna")  # a film nobody holds nor decided: taken
        with pytest.raises(ClaimRefused, match="Dr Anna decided it. Ask for a second read"):
            store.decide(film, "normal", reader="Dr Bob")
        with pytest.raises(ClaimRefused, match="a second read is of a film another reader decided"):
            store.decide(other, "normal", reader="Dr Bob", second_read=True)
        store.decide(film, "uncertain", reader="Dr Anna")  # her own decision, changed: no second read needed
        store.decide(film, "normal", "no consolidation", "Dr Bob", second_read=True)
        assert [(d.reader, d.decision, d.second_read) for d in store.history(film)] == [
            ("Dr Anna", "pneumonia", False), ("Dr Anna", "uncertain", False), ("Dr Bob", "normal", True)]
        assert store.withdraw(film, "Dr Bob").second_read
        assert store.film(film).decision.decision == "uncertain"
        assert [(e.reader, e.action) for e in store.events(film)] == [
            ("Dr Anna", "decide"), ("Dr Anna", "decide"), ("Dr Bob", "second read"), ("Dr Bob", "withdraw")]
        assert store.counts() == {"films": 2, "decided": 1, "claimed": 0, "unread": 1}
        store.decide(other, "normal")  # a viewer whose reader gave no name yet
        store.decide(other, "pneumonia", reader="Dr Carol")  # the same reader once named: no second read
        assert [(d.reader, d.second_read) for d in store.history(other)] == [("", False), ("Dr Carol", False)]


def stored_order(store: ReviewStore) -> list[tuple[int, float, bool]]:
    """Each film's suspicion and decision as kept on its row, checked against what its results and decisions say."""
    rows = store._query("SELECT id, suspicion, decided FROM films ORDER BY id")
    films = store.films()
    assert [(r["id"], r["suspicion"], bool(r["decided"])) for r in rows] == [
        (f.id, f.suspicion(), f.decision is not None) for f in films]
    return [(r["id"], r["suspicion"], bool(r["decided"])) for r in rows]


def test_a_store_of_the_previous_release_opens_unchanged_and_hands_out_films_in_the_same_order(where):
    """A store made as the previous release made it (schema 3) opens with every row as it was; each film's
    suspicion and decision, kept on its row from schema 4, are filled in from its results and decisions."""
    backend = open_backend(location(where))
    assert migrate(backend, upto=3) == 0
    stamp = "2026-11-30T10:00:00+00:00"
    probabilities = {1: [0.3, 0.8], 2: [None], 3: [], 4: [0.95], 5: [0.6], 6: [0.7, 0.99]}  # film 2: unanalysable
    with backend.transaction() as tx:
        for film, values in probabilities.items():
            tx.execute("INSERT INTO films (path, size, mtime_ns, sha256, added_at) VALUES (?, 1, 1, ?, ?)",
                       (f"/old/{film}.dcm", f"{film:064x}", stamp))
            for k, p in enumerate(values):  # film 6's 0.99 was refused (too faint): it does not count
                tx.execute("INSERT INTO results (film_id, model, model_sha256, probability, refused, analysed_at) "
                           "VALUES (?, ?, 'h', ?, ?, ?)", (film, f"m{k}", p, '["faint"]' if p == 0.99 else "[]", stamp))
        tx.execute("INSERT INTO decisions (film_id, decision, reader, decided_at) VALUES (4, 'pneumonia', 'Dr A', ?)",
                   (stamp,))
        tx.execute("INSERT INTO decisions (film_id, decision, reader, decided_at, withdrawn_at) VALUES "
                   "(5, 'normal', 'Dr A', ?, ?)", (stamp, stamp))
        tx.execute("INSERT INTO claims VALUES (1, 'Dr B', ?, 0)", (stamp,))  # a lease long run out
        before = {table: tx.rows(f"SELECT * FROM {table} ORDER BY 1, 2") for table in ("films", "results",
                                                                                       "decisions", "claims")}
    assert "suspicion" not in before["films"][0]
    backend.close()
    with ReviewStore(where) as store:
        assert store.state("schema_version") == "4"
        with store.backend.transaction() as tx:
            after = {table: tx.rows(f"SELECT * FROM {table} ORDER BY 1, 2") for table in before}
        assert [{k: v for k, v in r.items() if k not in ("suspicion", "decided")} for r in after["films"]] == \
            before["films"]
        assert {t: after[t] for t in before if t != "films"} == {t: before[t] for t in before if t != "films"}
        assert stored_order(store) == [(1, 0.8, False), (2, -1.0, False), (3, -1.0, False), (4, 0.95, True),
                                       (5, 0.6, False), (6, 0.7, False)]
        assert [store.claim_next(f"Dr {n}", 60).id for n in range(5)] == [1, 6, 5, 2, 3]
        assert store.claim_next("Dr 5", 60) is None
    if where.endswith(".sqlite"):  # the next film is read off the index, not found by sorting every film
        plan = " ".join(str(r[-1]) for r in sqlite3.connect(where).execute(
            "EXPLAIN QUERY PLAN " + SqliteBackend.translate(NEXT_UNREAD)))
        assert "films_unread" in plan and "TEMP B-TREE" not in plan, plan


def test_the_claim_order_follows_each_result_and_decision_as_it_is_written(where):
    with ReviewStore(where) as store:
        a, b, c = add_films(store, [0.2, 0.5, None])
        assert store.claim_next("Dr Anna", 60).id == b
        store.put_film(FilmInfo("/films/0000.png", 100, 0, f"{0:064x}"), [ModelResult("m2", "h", probability=0.9)])
        assert store.claim_next("Dr Bob", 60).id == a  # a second model found film a more suspicious: 0.9
        store.put_film(FilmInfo("/films/0002.png", 102, 2, "new content"), [ModelResult("m", "h", probability=0.1,
                       refused=["faint"])], replace_results=True)
        assert stored_order(store)[c - 1][1] == -1.0  # refused: last
        store.put_film(FilmInfo("/films/0002.png", 102, 2, "new content"), [ModelResult("m", "h", probability=0.4)],
                       replace_results=True)
        store.decide(a, "pneumonia", reader="Dr Bob")
        store.decide(b, "normal", reader="Dr Anna")
        assert stored_order(store) == [(a, 0.9, True), (b, 0.5, True), (c, 0.4, False)]
        assert store.claim_next("Dr Carol", 60).id == c
        store.release(c, "Dr Carol")
        store.decide(b, "uncertain", reader="Dr Anna")
        store.withdraw(b)
        assert stored_order(store)[b - 1][2] is True  # her first decision is current again
        store.withdraw(b)
        assert stored_order(store)[b - 1][2] is False  # none left: back among the unread, before film c
        assert store.claim_next("Dr Dan", 60).id == b


READER_LOOP = textwrap.dedent("""
    import json, sys
    from xrayviewer.core.review.store import ReviewStore
    with ReviewStore(sys.argv[1], pool_size=1) as store:
        while (film := store.claim_next(sys.argv[2], 60)) is not None:
            store.decide(film.id, "normal", reader=sys.argv[2])
            print(film.id, flush=True)
""")


def test_eight_reader_processes_read_200_films_each_exactly_once(where):
    with ReviewStore(where) as store:
        add_films(store, [(i * 37 % 200) / 200 for i in range(200)])
    readers = [subprocess.Popen([sys.executable, "-c", READER_LOOP, where, f"reader {n}"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for n in range(8)]
    outputs = [r.communicate(timeout=600) for r in readers]
    assert [r.returncode for r in readers] == [0] * 8, [err[-500:] for _, err in outputs]
    read = [int(line) for out, _ in outputs for line in out.split()]
    assert sorted(read) == list(range(1, 201))  # every film read once, by one reader
    assert sum(1 for out, _ in outputs if out.split()) >= 2  # they did read side by side
    with ReviewStore(where) as store:
        assert store.counts() == {"films": 200, "decided": 200, "claimed": 0, "unread": 0}
        for film in store.films():
            events = store.events(film.id)
            assert [e.action for e in events] == ["claim", "decide"]  # one claim, never a second one
            assert events[0].reader == events[1].reader == film.decision.reader
            assert len(store.history(film.id)) == 1


def test_review_commands_in_parallel_shell_loops_and_a_reader_that_died(where):
    """Three shell loops of `review next` and `review decide` read nine films; a reader whose workstation died
    holding the most suspicious one loses it when the lease runs out."""
    with ReviewStore(where) as store:
        add_films(store, [i / 10 for i in range(9)])
    died_at = time.monotonic()
    died = json.loads(xrayviewer("review", "next", "--db", where, "--reader", "Dr Gone", "--lease", "3").stdout)
    assert died["film"] == 9 and died["path"] == "/films/0008.png" and died["suspicion"] == 0.8
    py = sys.executable
    loop = (f'while true; do line=$("{py}" -m xrayviewer review next --db "$1" --reader "$2") || exit $?; '
            f'film=$(echo "$line" | "{py}" -c "import json,sys; print(json.load(sys.stdin)[\'film\'])"); '
            f'"{py}" -m xrayviewer review decide "$film" --decision other --db "$1" --reader "$2" >/dev/null '
            '|| exit 9; echo "$film"; done')
    shells = [subprocess.Popen(["bash", "-c", loop, "loop", where, f"Dr {n}"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for n in range(3)]
    outputs = [s.communicate(timeout=600) for s in shells]
    assert [s.returncode for s in shells] == [3] * 3, [e[-400:] for _, e in outputs]  # `next`: none left
    assert all("nothing left to read" in err for _, err in outputs)
    read = sorted(int(x) for out, _ in outputs for x in out.split())
    assert read in (list(range(1, 9)), list(range(1, 10)))  # film 9 only once its lease ran out
    time.sleep(max(0.0, died_at + 3.5 - time.monotonic()))
    status = json.loads(xrayviewer("review", "status", "--db", where).stdout)
    assert status["claimed"] == 0 and status["decided"] == len(read) and status["unread"] == 9 - len(read)
    if len(read) == 8:
        assert json.loads(xrayviewer("review", "next", "--db", where, "--reader", "Dr Back").stdout)["film"] == 9
    refused = xrayviewer("review", "decide", "1", "--decision", "normal", "--db", where, "--reader", "Dr Late")
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert "decided it. Ask for a second read (--second-read)" in refused.stderr and "Traceback" not in refused.stderr
    second = xrayviewer("review", "decide", "1", "--decision", "normal", "--second-read", "--db", where,
                        "--reader", "Dr Late")
    assert second.returncode == 0 and json.loads(second.stdout)["second_read"] is True


def test_a_claim_held_by_another_reader_is_one_line_and_exit_1(where):
    with ReviewStore(where) as store:
        add_films(store, [0.5])
    assert xrayviewer("review", "next", "--db", where, "--reader", "Dr Anna").returncode == 0
    result = xrayviewer("review", "decide", "/films/0000.png", "--decision", "normal", "--db", where,
                        "--reader", "Dr Bob")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: film 1 (/films/0000.png): the decision was not taken: Dr Anna is reading")
    assert len(result.stderr.splitlines()) == 1
    assert xrayviewer("review", "next", "--db", where, "--reader", "Dr Bob").returncode == 3
    missing = xrayviewer("review", "decide", "77", "--decision", "normal", "--db", where, "--reader", "Dr Bob")
    assert missing.returncode == 1 and "77: not in the review store" in missing.stderr


def test_a_store_is_copied_to_postgresql_and_back_with_nothing_lost(pg, tmp_path):
    source = tmp_path / "workstation.sqlite"
    with ReviewStore(source) as store:
        ids = add_films(store, [0.91, 1 / 3, None, 0.5])
        store.decide(ids[0], "pneumonia", "RLL ñ", "Dr Anna", {"m": {"probability": 0.91}})
        store.decide(ids[0], "normal", reader="Dr Bob", second_read=True)
        store.decide(ids[1], "uncertain", reader="Dr Anna")
        store.withdraw(ids[1])
        store.set_marks(ids[0], [Mark("length", [(1.5, 2.25), (3, 4)], value=2.8284271247461903, unit="mm")])
        store.set_draft(ids[2], "half a note")
        store.set_state("last_film", "/films/0002.png")
        store.claim(ids[3], "Dr Carol", 600)
        before = snapshot(store)
    url = pg.create(f"copy{uuid.uuid4().hex[:8]}")
    result = xrayviewer("store", "copy", str(source), url)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["tables"] == {"films": 4, "results": 3, "decisions": 3, "marks": 1, "drafts": 1, "state": 2,
                              "claims": 1, "events": 5} and line["compared"] is True
    assert pg.password not in result.stdout + result.stderr and "***" in line["to"]
    with ReviewStore(url) as shared:
        assert snapshot(shared) == before
        assert shared.claims()[ids[3]].reader == "Dr Carol"
        new = add_films(shared, [0.1], folder="/later")[0]
        assert new == max(ids) + 1  # ids go on after the copied ones
    again = xrayviewer("store", "copy", str(source), url)
    assert again.returncode == 1 and "it already holds films" in again.stderr
    back = tmp_path / "back.sqlite"
    assert xrayviewer("store", "copy", url, str(back)).returncode == 0
    with ReviewStore(back) as store:
        assert snapshot(store)["films"][:4] == before["films"] and len(store.films()) == 5


def snapshot(store: ReviewStore) -> dict:
    """What a reader or node sees of a store, film by film."""
    films = store.films()
    return {"films": films, "history": [store.history(f.id) for f in films],
            "events": [[(e.reader, e.action, e.detail) for e in store.events(f.id)] for f in films],
            "marks": [store.marks(f.id) for f in films], "drafts": [store.draft(f.id) for f in films],
            "state": store.state("last_film"), "counts": store.counts()}


def test_credentials_from_pgpassfile_or_a_service_file_and_never_printed(pg, tmp_path):
    url = pg.create("credentials")
    bare = pg.url("credentials", password=False)
    wrong = url.replace(pg.password, "not-the-password")
    result = xrayviewer("review", "status", "--db", wrong)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "password authentication failed" in result.stderr and "not-the-password" not in result.stderr
    assert "postgres:***@127.0.0.1" in result.stderr
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg.port}:credentials:postgres:{pg.password}\n")
    passfile.chmod(0o600)
    with_passfile = xrayviewer("review", "status", "--db", bare, env={**os.environ, "PGPASSFILE": str(passfile)})
    assert with_passfile.returncode == 0 and json.loads(with_passfile.stdout)["films"] == 0
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[reading]\nhost=127.0.0.1\nport={pg.port}\ndbname=credentials\nuser=postgres\n"
                        f"password={pg.password}\n")
    by_service = xrayviewer("review", "status", "--db", "postgresql:///?service=reading",
                            env={**os.environ, "PGSERVICEFILE": str(services)})
    assert by_service.returncode == 0, by_service.stderr
    ssl = xrayviewer("review", "status", "--db", f"{url}?sslmode=require")  # the test server has no TLS
    assert ssl.returncode == 1 and "SSL" in ssl.stderr and pg.password not in ssl.stderr
    assert masked(f"postgresql://u:{pg.password}@h/db?sslmode=require&password=x") == \
        "postgresql://u:***@h/db?sslmode=require&password=***"


def test_a_server_restart_loses_no_claim_or_decision_and_a_server_down_is_one_clear_error(pg):
    from xrayviewer.core.review.store_sql import StoreUnreachable

    url = pg.create("restarting")
    with ReviewStore(url) as store:
        first, second = add_films(store, [0.9, 0.8])
        assert store.claim_next("Dr Anna", 600).id == first
        pg.restart()  # every pooled connection is broken: the pool's check replaces it
        store.decide(first, "pneumonia", reader="Dr Anna")
        assert store.claim_next("Dr Bob", 600).id == second
        pg.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnreachable) as down:
            store.decide(second, "normal", reader="Dr Bob")
        assert time.monotonic() - started < 30 and isinstance(down.value, OSError)  # the viewer's "not saved"
        assert pg.password not in str(down.value) and "cannot use the review database" in str(down.value)
        pg.start()
        store.decide(second, "normal", reader="Dr Bob")
        assert store.counts() == {"films": 2, "decided": 2, "claimed": 0, "unread": 0}
        assert [d.reader for f in store.films() for d in store.history(f.id)] == ["Dr Anna", "Dr Bob"]


def test_a_new_database_opened_by_several_processes_at_once_is_made_once(pg):
    url = pg.create("racing")
    opening = "import sys; from xrayviewer.core.review.store import ReviewStore; ReviewStore(sys.argv[1]).close()"
    processes = [subprocess.Popen([sys.executable, "-c", opening, url], stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
    assert [(p.wait(120), p.stderr.read()) for p in processes] == [(0, "")] * 4
    with ReviewStore(url) as store:
        assert store.state("schema_version") == "4" and store.counts()["films"] == 0


def test_two_worklist_runs_at_once_store_each_film_once_and_report_reads_them(where, tmp_path, kermany):
    from tiny_models import build

    model = build(tmp_path / "tiny.onnx", bias=-1.0, ood_threshold=0.9)
    folder = tmp_path / "films"
    copy_films(kermany, folder, 6)
    url = where
    args = ["worklist", str(folder), "--db", url, "--model", str(model), "--provider", "cpu"]
    runs = [subprocess.Popen([sys.executable, "-m", "xrayviewer", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=tmp_path) for _ in range(2)]
    outputs = [r.communicate(timeout=600) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [e[-500:] for _, e in outputs]
    assert not (tmp_path / "postgresql:").exists()  # the URL is a database, never a folder
    if url.startswith("postgresql"):  # its password hidden in the line that names the store
        secret = urlsplit(url).password
        assert all(":***@" in err and secret not in out + err for out, err in outputs)
    with ReviewStore(url) as store:
        films = store.films()
        assert len(films) == 6 and len({f.info.path for f in films}) == 6
        assert all(f.results and f.info.sha256 for f in films)
    report = xrayviewer("report", "--db", url)
    assert report.returncode == 0 and json.loads(report.stdout)["films"] == 6


STEADY_READER = textwrap.dedent("""
    import json, sys, time
    from xrayviewer.core.review.store import ReviewStore
    from xrayviewer.core.review.store_sql import StoreUnreachable
    url, me, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = ReviewStore(url, pool_size=1)
    print("ready", flush=True)

    def decide(film_id):
        # a decision whose answer the restart lost may have been committed: it is made again only if it was not
        try:
            store.decide(film_id, "normal", reader=me)
        except StoreUnreachable:
            while True:
                time.sleep(0.5)
                try:
                    current = store.film(film_id).decision
                    if current is None or current.reader != me:
                        store.decide(film_id, "normal", reader=me)
                    return
                except StoreUnreachable:
                    pass

    while True:
        try:
            film = store.claim_next(me, 30)
            if film is None:
                if store.counts()["decided"] >= total:
                    break
                time.sleep(0.2)
                continue
            decide(film.id)
            print(json.dumps({"film": film.id, "at": time.time()}), flush=True)  # told: it is saved
        except StoreUnreachable:
            time.sleep(0.5)
    store.close()
""")
KILLED_READER = ("import sys, time; from xrayviewer.core.review.store import ReviewStore; "
                 "store = ReviewStore(sys.argv[1], pool_size=1); print('ready', flush=True)\n"
                 "while (film := store.claim_next('Dr Killed', 3)) is None: time.sleep(0.02)\n"
                 "print(film.id, flush=True); time.sleep(600)")


def test_readers_read_while_two_worklists_write_through_a_server_restart(pg, tmp_path, kermany):
    """Three readers claim and decide while two `xrayviewer worklist` runs analyse the same 32 real chest films into
    the same PostgreSQL store, a reader is killed holding a film, and the server restarts in the middle: every film
    is stored once and decided once, every decision a reader was told is saved is there, and the killed reader's
    film comes back when its lease runs out."""
    url = pg.create("steady")
    folder = tmp_path / "films"
    total = len(copy_films(kermany, folder, 32))
    # the readers (and the reader that will die) wait for films first, so that the restart comes mid-analysis even
    # on a fast machine (32 films take the two worklists a few seconds; a reader's start took longer under load)
    killed = subprocess.Popen([sys.executable, "-c", KILLED_READER, url], stdout=subprocess.PIPE, text=True)
    readers = [subprocess.Popen([sys.executable, "-c", STEADY_READER, url, f"Dr {n}", str(total)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(3)]
    started = [killed, *readers]  # every process this test starts, killed at the end if it still runs
    try:
        assert [r.stdout.readline() for r in (killed, *readers)] == ["ready\n"] * 4
        worklists = [subprocess.Popen([sys.executable, "-m", "xrayviewer", "worklist", str(folder), "--db", url,
                                       "--provider", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for _ in range(2)]
        started += worklists
        with ReviewStore(url) as store:
            held = int(killed.stdout.readline())
            killed.kill()  # its workstation died holding the film
            killed.wait(30)
            wait_for(lambda: store.counts()["decided"] >= 1, worklists)
            analysing = [w.poll() is None for w in worklists]
            pg.restart()  # every pooled connection of every process is broken
        assert any(analysing), "the worklists were done before the restart"
        outputs = [w.communicate(timeout=600) for w in worklists]
        finished = time.time()
        assert [w.returncode for w in worklists] == [0, 0], [e[-800:] for _, e in outputs]
        for reader in readers:  # a few short lines each: no pipe fills
            reader.wait(300)
        said = [(r.stdout.read(), r.stderr.read()) for r in readers]  # past the "ready" line read before
        assert [r.returncode for r in readers] == [0] * 3, [e[-800:] for _, e in said]
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait(30)
    told = [(f"Dr {n}", json.loads(line)) for n, (out, _) in enumerate(said) for line in out.splitlines()]
    with ReviewStore(url) as store:
        films = store.films()
        assert len(films) == total and len({f.info.path for f in films}) == total
        assert all(f.results and f.info.sha256 and f.decision for f in films)
        assert sorted(line["film"] for _, line in told) == sorted(f.id for f in films)  # each decided once
        for reader, line in told:  # each decision a reader was told is saved, under their name, alone
            assert [d.reader for d in store.history(line["film"])] == [reader]
            assert [e.action for e in store.events(line["film"])].count("decide") == 1
        assert store.counts() == {"films": total, "decided": total, "claimed": 0, "unread": 0}
        back = [(e.reader, e.action, e.detail) for e in store.events(held)]
        assert back[0] == ("Dr Killed", "claim", "") and back[1][1:] == ("claim", "Dr Killed's lease had run out")
        assert store.film(held).decision.reader == back[1][0] != "Dr Killed"
    assert min(line["at"] for _, line in told) < finished  # they read while the films came in


def wait_for(condition, workers: list[subprocess.Popen], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        assert all(w.poll() in (None, 0) for w in workers), [w.stderr.read()[-800:] for w in workers if w.poll()]
        time.sleep(0.1)


def test_listen_analyses_into_the_server_store_named_by_xrayviewer_db(pg, tmp_path, dicom_data):
    from test_pacs import CHEST_CR, PUSHER_AET, ListenerProcess, free_port, send_file

    url = pg.create("node")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XRAYVIEWER_DB": url}
    port = free_port()
    listener = ListenerProcess(env, port, PUSHER_AET)
    try:
        assert send_file(port, dicom_data / CHEST_CR) == 0
        line = listener.next(120)
        assert line["status"] == "analysed" and line["film_id"] == 1
    finally:
        assert listener.stop() == 0
    said = "".join(listener.stderr)
    assert "results into postgresql://postgres:***@127.0.0.1" in said and pg.password not in said
    film = json.loads(xrayviewer("review", "next", "--reader", "Dr Anna", env=env).stdout)
    assert film["film"] == 1 and film["path"] == line["path"] and 0 <= film["suspicion"] <= 1
    assert not (tmp_path / "data" / "xrayviewer" / "review.sqlite").exists()  # nothing went to a local file


def test_a_url_of_another_kind_is_refused_and_makes_no_folder(tmp_path):
    for args in (["worklist", str(tmp_path), "--db", "mysql://reader:s3cret@db/department"],
                 ["store", "copy", str(tmp_path / "a.sqlite"), "mysql://reader:s3cret@db/department"]):
        result = xrayviewer(*args, cwd=tmp_path)
        assert result.returncode == 2 and "mysql://reader:***@db/department is not a review database" in result.stderr
        assert "s3cret" not in result.stderr
    env = {**os.environ, "XRAYVIEWER_DB": "mysql://reader:s3cret@db/department"}
    result = xrayviewer("review", "status", cwd=tmp_path, env=env)
    assert result.returncode == 1 and "is not a review database" in result.stderr and "s3cret" not in result.stderr
    assert list(tmp_path.iterdir()) == []

