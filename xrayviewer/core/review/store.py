"""The review store: films, AI results, reader decisions and measurements in one SQLite file (WAL), or in one
PostgreSQL database that every workstation and AI node of a department shares (`--db postgresql://...`).

One row per film (path, content hash, DICOM UIDs, patient and study fields), one row per film and model
(probability, label, refusal, model file hash), one row per reader decision (append-only: the latest is the
current one, each carries the AI result shown at that moment) and the film's measurements and annotations.
Every write is its own transaction, committed before the call returns, so a crash loses nothing decided.
The file lives in the user's data folder (`default_db_path`), never next to the films.

Readers share films through claims: a reader claims a film to read it, with a lease renewed while it is on screen;
nobody else is handed it or may decide it until the lease runs out (a workstation that dies lets it go). Every
claim, decision, second read and withdrawal is in the film's history (`events`) under the name the reader gave.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.migrations import FILM_DECIDED, FILM_SUSPICION, LATEST, migrate
from xrayviewer.core.review.store_sql import (
    CONNECT_S,
    POOL_SIZE,
    Backend,
    StoreUnreachable,
    is_server,
    masked,
    open_backend,
    scrubbed,
)

DB_ENV = "XRAYVIEWER_DB"
DB_NAME = "review.sqlite"
DECISIONS = ("normal", "pneumonia", "uncertain", "other")
SCHEMA_VERSION = LATEST  # 2: accession, age and sex of each film; withdrawn decisions (undo); note drafts. 3: claims.
# 4: each film's suspicion and whether it is decided on its row, the undecided films indexed by suspicion
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # a scheme: a database URL, never a file name
LEASE_S = 120.0  # how long a claim holds without being renewed (the viewer renews it while the film is on screen)
UNDECIDED = "NOT EXISTS (SELECT 1 FROM decisions d WHERE d.film_id = f.id AND d.withdrawn_at IS NULL)"
UNCLAIMED = "NOT EXISTS (SELECT 1 FROM claims c WHERE c.film_id = f.id AND c.expires_at > {now})"
# the next film to claim, read off the index of undecided films (films_unread), most suspicious first, past those held
NEXT_UNREAD = f"SELECT f.id FROM films f WHERE f.decided = 0 AND {UNCLAIMED} ORDER BY f.suspicion DESC, f.id LIMIT 1"
T = TypeVar("T")


def location(text: str | Path) -> str | Path:
    """A store given on the command line or in `$XRAYVIEWER_DB`: a postgresql:// URL as it is, else a file path.
    ValueError for another URL (it would otherwise become a folder named after its scheme)."""
    if is_server(str(text)):
        return str(text)
    if isinstance(text, str) and URL.match(text):
        raise ValueError(f"{masked(text)} is not a review database: give a file, or a postgresql://USER@HOST/DB URL")
    return Path(text).expanduser()


def default_location() -> str | Path:
    """`$XRAYVIEWER_DB` (a file or a postgresql:// URL), else review.sqlite in the user's data folder."""
    return location(os.environ[DB_ENV]) if os.environ.get(DB_ENV) else default_db_path()


def default_db_path() -> Path:
    """`$XRAYVIEWER_DB` when it names a file (not a URL), else review.sqlite in the platform's per-user data
    folder."""
    if os.environ.get(DB_ENV) and not URL.match(os.environ[DB_ENV]):
        return Path(os.environ[DB_ENV]).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "XRayViewer"
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support" / "XRay Viewer"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "xrayviewer"
    return base / DB_NAME


def now() -> str:
    """UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class FilmInfo:
    """What the store keeps about a film's file and header."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    sop_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_description: str = ""
    modality: str = ""
    view_position: str = ""
    accession: str = ""
    patient_age: str = ""  # DICOM age string, e.g. "004Y"
    patient_sex: str = ""
    error: str | None = None


@dataclass(frozen=True)
class ModelResult:
    """One model's answer on one film, as stored."""

    model: str
    model_sha256: str
    provider: str = ""
    threshold: float | None = None
    probability: float | None = None
    label: str | None = None
    refused: list[str] = field(default_factory=list)
    out_of_scope: bool = False
    ood_score: float | None = None

    def as_dict(self) -> dict:
        return {"model": self.model, "probability": self.probability, "label": self.label,
                "threshold": self.threshold, "refused": self.refused, "out_of_scope": self.out_of_scope,
                "ood_score": self.ood_score, "model_sha256": self.model_sha256}


@dataclass(frozen=True)
class Decision:
    """A reader's decision with what the AI showed then; a withdrawn one (undo) stays in the history."""

    decision: str
    note: str
    reader: str
    decided_at: str
    ai_shown: dict
    withdrawn_at: str | None = None
    second_read: bool = False  # made on a film another reader had decided, and asked for as a second read


@dataclass(frozen=True)
class Claim:
    """A reader holding a film: nobody else is handed it or may decide it until the lease runs out."""

    film_id: int
    reader: str
    claimed_at: str
    expires_in: float  # seconds left on the lease, by the database's clock


@dataclass(frozen=True)
class Event:
    """One line of a film's history: a claim, release, decision, second read or withdrawal, and by whom."""

    reader: str
    action: str
    detail: str
    at: str


class ClaimRefused(XRayViewerError, PermissionError):
    """A claim, decision or withdrawal the film's claim or decision does not allow (an OSError too: to the viewer,
    a write that was not saved, with the reason)."""


@dataclass(frozen=True)
class Mark:
    """A measurement or annotation in film pixel coordinates: length, angle, roi, arrow or text."""

    kind: str
    points: list[tuple[float, float]]
    text: str = ""
    value: float | None = None
    unit: str = ""


@dataclass(frozen=True)
class FilmRow:
    """A film with its results and current decision: one worklist or report row."""

    id: int
    info: FilmInfo
    results: dict[str, ModelResult]
    decision: Decision | None

    def suspicion(self) -> float:
        """The highest probability any model gave; refused or unanalysed films sort last (-1)."""
        values = [r.probability for r in self.results.values() if r.probability is not None and not r.refused]
        return max(values, default=-1.0)


@contextmanager
def locked_transaction(db: sqlite3.Connection, lock: threading.Lock) -> Iterator[sqlite3.Connection]:
    """One write transaction on `db` (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any error) under `lock`."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class ReviewStore:
    """A thread-safe handle on one review database; open with `ReviewStore(path or URL)`, close when done.

    `path` is the SQLite file (None on a server); `name` is what messages show (the file, or the URL with its
    password hidden)."""

    def __init__(self, path: str | Path | None = None, pool_size: int = POOL_SIZE) -> None:
        try:
            where = default_location() if path is None else location(path)
        except ValueError as exc:
            raise XRayViewerError(None, "cannot open the review database", str(exc)) from None
        self.name = masked(where) if isinstance(where, str) else str(where)
        try:
            self.backend: Backend = open_backend(where, pool_size)
            migrate(self.backend)
        except XRayViewerError:  # StoreUnreachable among them
            raise
        except Exception as exc:  # noqa: BLE001 - sqlite3.Error, OSError, psycopg.Error: the driver's reason
            reason = scrubbed(str(exc), where) if isinstance(where, str) else str(exc)
            raise XRayViewerError(self.name, "cannot open the review database", reason,
                                  f"Give another file or postgresql:// URL with --db or ${DB_ENV}.") from None
        self.path: Path | None = self.backend.path
        self.db = getattr(self.backend, "db", None)  # the SQLite connection (None on a server)

    @property
    def shared(self) -> bool:
        """Whether the store is on a database server (shared by workstations and nodes)."""
        return self.path is None

    @property
    def local_path(self) -> Path:
        """Where this machine keeps what belongs beside the store (the outbox): the SQLite file, or for a server a
        name in the user's data folder made from its host, port and database."""
        if self.path is not None:
            return self.path
        from urllib.parse import urlsplit

        url = urlsplit(self.backend.url)
        label = "-".join(filter(None, (url.hostname or "local", str(url.port or ""), url.path.strip("/"))))
        return default_db_path().with_name(f"postgresql-{''.join(c if c.isalnum() else '-' for c in label)}")

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "ReviewStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _transaction(self):
        return self.backend.transaction()

    def _query(self, sql: str, args: tuple = ()) -> list[dict]:
        return self._again(lambda: self.backend.query(sql, args))

    def _again(self, call: Callable[[], T]) -> T:
        """`call()`, made once more on a server that broke its connection off mid-way (a restart; the pool then
        gives a new one): for reads, and writes that come out the same made twice. A failure after the pool's whole
        wait (no connection to be had: the server is down) is not made again."""
        started = time.monotonic()
        try:
            return call()
        except StoreUnreachable:
            if self.path is not None or time.monotonic() - started >= CONNECT_S:
                raise
        return call()

    # ----- films and results -----
    def film_by_path(self, path: str | Path) -> tuple[int, FilmInfo] | None:
        rows = self._query("SELECT * FROM films WHERE path = ?", (str(path),))
        return (rows[0]["id"], _info(rows[0])) if rows else None

    def film_by_hash(self, sha256: str) -> list[tuple[int, FilmInfo]]:
        return [(r["id"], _info(r)) for r in self._query("SELECT * FROM films WHERE sha256 = ?", (sha256,))]

    def models_of(self, film_id: int) -> dict[str, str]:
        """model name -> model file hash of the results stored for a film."""
        rows = self._query("SELECT model, model_sha256 FROM results WHERE film_id = ?", (film_id,))
        return {r["model"]: r["model_sha256"] for r in rows}

    def put_film(self, info: FilmInfo, results: list[ModelResult], replace_results: bool = False) -> int:
        """Insert or update a film and its results in one transaction; returns the film id. One row per path
        however many writers store the same film at once.

        `replace_results` drops the film's earlier results first (its content changed). Written again where a
        server restart broke it off (the same film and results, by path).
        """
        fields = list(FilmInfo.__dataclass_fields__)
        values = [getattr(info, k) for k in fields]

        def write() -> int:
            with self._transaction() as tx:
                film_id = int(tx.one(
                    f"INSERT INTO films ({', '.join(fields)}, added_at) VALUES ({', '.join('?' * (len(fields) + 1))})"
                    f" ON CONFLICT (path) DO UPDATE SET {', '.join(f'{k} = excluded.{k}' for k in fields)} "
                    "RETURNING id", (*values, now()))["id"])
                if replace_results:
                    tx.execute("DELETE FROM results WHERE film_id = ?", (film_id,))
                tx.executemany(
                    "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (film_id, model) DO "
                    "UPDATE SET model_sha256 = excluded.model_sha256, provider = excluded.provider, threshold = "
                    "excluded.threshold, probability = excluded.probability, label = excluded.label, refused = "
                    "excluded.refused, out_of_scope = excluded.out_of_scope, ood_score = excluded.ood_score, "
                    "analysed_at = excluded.analysed_at",
                    [(film_id, r.model, r.model_sha256, r.provider, r.threshold, r.probability, r.label,
                      json.dumps(r.refused), int(r.out_of_scope), r.ood_score, now()) for r in results])
                tx.execute(f"UPDATE films SET suspicion = {FILM_SUSPICION} WHERE id = ?", (film_id,))  # claim order
            return film_id

        return self._again(write)

    def move_film(self, film_id: int, info: FilmInfo) -> None:
        """The same content found at a new path (the old one is gone): keep its results and decisions."""
        self._write("UPDATE films SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
                    (info.path, info.size, info.mtime_ns, film_id))

    def touch_film(self, film_id: int, mtime_ns: int) -> None:
        """The file was touched but its content is the same."""
        self._write("UPDATE films SET mtime_ns = ? WHERE id = ?", (mtime_ns, film_id))

    def _write(self, sql: str, args: tuple) -> None:
        """One statement that comes out the same made twice, in its own transaction (made again after a restart)."""
        def write() -> None:
            with self._transaction() as tx:
                tx.execute(sql, args)

        self._again(write)

    def films(self, paths: list[str] | None = None) -> list[FilmRow]:
        """Every film (or those at `paths`) with its results and current decision, in insertion order."""
        rows = self._query("SELECT * FROM films ORDER BY id")
        if paths is not None:
            wanted = set(paths)
            rows = [r for r in rows if r["path"] in wanted]
        results: dict[int, dict[str, ModelResult]] = {}
        for r in self._query("SELECT * FROM results ORDER BY film_id, model"):
            results.setdefault(r["film_id"], {})[r["model"]] = _result(r)
        decisions = {r["film_id"]: _decision(r) for r in self._query(
            "SELECT * FROM decisions WHERE id IN "
            "(SELECT MAX(id) FROM decisions WHERE withdrawn_at IS NULL GROUP BY film_id)")}
        return [FilmRow(r["id"], _info(r), results.get(r["id"], {}), decisions.get(r["id"])) for r in rows]

    def film(self, film_id: int) -> FilmRow:
        """One film as `films` gives it, read alone (the AI node reads each film it sends: 1.1 s in a store of 20,000
        films when all were read)."""
        return _film(self._query, film_id)

    # ----- claims: who reads which film -----
    def claim_next(self, reader: str, lease_s: float = LEASE_S) -> FilmRow | None:
        """Claim the next film for `reader`: one they already hold, else the most suspicious film nobody holds and
        nobody decided (None when none is left). On PostgreSQL readers asking at once skip each other's candidate
        (FOR UPDATE SKIP LOCKED); on SQLite the claim is one BEGIN IMMEDIATE transaction."""
        _check_reader(reader)
        with self._transaction() as tx:
            held = tx.one(f"SELECT f.id FROM films f JOIN claims c ON c.film_id = f.id WHERE c.reader = ? AND "
                          f"c.expires_at > {{now}} AND {UNDECIDED} ORDER BY f.id LIMIT 1{{lock}}", (reader,))
            if held is not None:
                self._claim(tx, held["id"], reader, lease_s, "renewed")
                film_id = held["id"]
            else:
                film_id = self._claim_free(tx, reader, lease_s)
            return None if film_id is None else _film(tx.rows, film_id)  # read in the claim's transaction

    def _claim_free(self, tx, reader: str, lease_s: float) -> int | None:
        for _ in range(1000):  # a candidate another reader took between our look and our lock is passed over
            row = tx.one(NEXT_UNREAD + "{skip_locked}")
            if row is None:
                return None
            # the row is ours now: read again, seeing every claim and decision committed before the lock
            if tx.one(f"SELECT f.id FROM films f WHERE f.id = ? AND f.decided = 0 AND {UNCLAIMED}", (row["id"],)) and \
                    self._claim(tx, row["id"], reader, lease_s):
                return row["id"]
        raise RuntimeError("no claim after 1000 tries")

    def _claim(self, tx, film_id: int, reader: str, lease_s: float, detail: str = "") -> bool:
        """Take or renew the film's claim unless another reader holds it; history gets the claim (not a renewal)."""
        before = tx.one("SELECT reader, expires_at > {now} AS live FROM claims WHERE film_id = ?", (film_id,))
        taken = tx.one(
            "INSERT INTO claims (film_id, reader, claimed_at, expires_at) VALUES (?, ?, ?, {now} + ?) "
            "ON CONFLICT (film_id) DO UPDATE SET reader = excluded.reader, claimed_at = excluded.claimed_at, "
            "expires_at = excluded.expires_at WHERE claims.expires_at <= {now} OR claims.reader = excluded.reader "
            "RETURNING film_id", (film_id, reader, now(), float(lease_s)))
        if taken is None:
            return False
        if before and before["reader"] != reader:
            detail = f"{before['reader']}'s lease had run out"
        if detail != "renewed":
            self._event(tx, film_id, reader, "claim", detail)
        return True

    def claim(self, film_id: int, reader: str, lease_s: float = LEASE_S) -> Claim:
        """Claim (or renew the claim on) one film: the viewer's film on screen. ClaimRefused when another reader
        holds it; a decided film can be claimed (to read it again, or for a second read)."""
        _check_reader(reader)
        with self._transaction() as tx:
            self._lock_film(tx, film_id)
            mine = tx.one("SELECT 1 AS held FROM claims WHERE film_id = ? AND reader = ? AND expires_at > {now}",
                          (film_id, reader))
            if not self._claim(tx, film_id, reader, lease_s, "renewed" if mine else ""):
                raise self._refusal(tx, film_id, "cannot be claimed")
        return self.claims()[film_id]

    def renew(self, film_id: int, reader: str, lease_s: float = LEASE_S) -> bool:
        """Extend the reader's lease; False when it is no longer theirs (it ran out and another reader took it)."""
        with self._transaction() as tx:
            self._lock_film(tx, film_id)
            row = tx.one("UPDATE claims SET expires_at = {now} + ? WHERE film_id = ? AND reader = ? RETURNING film_id",
                         (float(lease_s), film_id, reader))
        return row is not None

    def release(self, film_id: int, reader: str) -> bool:
        """Give the film back (the reader moved on undecided); False when the reader did not hold it."""
        with self._transaction() as tx:
            self._lock_film(tx, film_id)
            row = tx.one("DELETE FROM claims WHERE film_id = ? AND reader = ? RETURNING film_id", (film_id, reader))
            if row is not None:
                self._event(tx, film_id, reader, "release")
        return row is not None

    def claims(self) -> dict[int, Claim]:
        """Live claims by film id: who reads what now."""
        return {r["film_id"]: Claim(r["film_id"], r["reader"], r["claimed_at"], r["left"]) for r in self._query(
            "SELECT film_id, reader, claimed_at, expires_at - {now} AS left FROM claims WHERE expires_at > {now} "
            "ORDER BY film_id")}

    def counts(self) -> dict[str, int]:
        """films, decided (a current decision), claimed (held, undecided) and unread (neither)."""
        row = self._query(f"SELECT (SELECT COUNT(*) FROM films) AS films, (SELECT COUNT(*) FROM films f WHERE NOT "
                          f"{UNDECIDED}) AS decided, (SELECT COUNT(*) FROM films f WHERE {UNDECIDED} AND NOT "
                          f"{UNCLAIMED}) AS claimed")[0]
        counts = {k: int(v) for k, v in row.items()}
        return {**counts, "unread": counts["films"] - counts["decided"] - counts["claimed"]}

    def revision(self) -> tuple:
        """A cheap mark of the films, their results and decisions: it differs once any was added, analysed again,
        decided or withdrawn (a viewer on a shared store reads the films again only then; claims it reads each
        time)."""
        row = self._query("SELECT (SELECT COUNT(*) FROM films) AS films, (SELECT MAX(id) FROM films) AS last_film, "
                          "(SELECT COUNT(*) FROM results) AS results, (SELECT MAX(analysed_at) FROM results) AS "
                          "analysed, (SELECT MAX(id) FROM decisions) AS decisions, (SELECT MAX(id) FROM events WHERE "
                          "action = 'withdraw') AS withdrawn")[0]
        return tuple(row.values())

    def events(self, film_id: int) -> list[Event]:
        """The film's history: each claim, release, decision, second read and withdrawal, oldest first."""
        return [Event(r["reader"], r["action"], r["detail"], r["at"]) for r in self._query(
            "SELECT * FROM events WHERE film_id = ? ORDER BY id", (film_id,))]

    def _lock_film(self, tx, film_id: int) -> None:
        """Hold the film's row until the transaction ends (PostgreSQL; SQLite holds the file): every change to a
        film's claim or decision takes this first, so each sees the one before it."""
        if tx.one("SELECT id FROM films WHERE id = ?{lock}", (film_id,)) is None:
            raise XRayViewerError(f"film {film_id}", "not in the review store", f"{self.name} has no such film")

    def _refusal(self, tx, film_id: int, what: str) -> ClaimRefused:
        """Why the film is not the reader's: another reader's live claim."""
        claim = tx.one("SELECT reader, expires_at - {now} AS left FROM claims WHERE film_id = ?", (film_id,))
        path = tx.one("SELECT path FROM films WHERE id = ?", (film_id,))["path"]
        return ClaimRefused(f"film {film_id} ({path})", what, f"{claim['reader']} is reading it (lease "
                            f"{max(claim['left'], 0):.0f} s more)", "Take another film: xrayviewer review next.")

    @staticmethod
    def _event(tx, film_id: int, reader: str, action: str, detail: str = "") -> None:
        tx.execute("INSERT INTO events (film_id, reader, action, detail, at) VALUES (?, ?, ?, ?, ?)",
                   (film_id, reader, action, detail, now()))

    # ----- decisions -----
    def decide(self, film_id: int, decision: str, note: str = "", reader: str = "",
               ai_shown: dict | None = None, second_read: bool = False) -> Decision:
        """Record a reader's decision at once (committed before returning); earlier ones stay as history.

        Taken from the reader holding the film's claim, or on a film nobody holds; the reader's claim ends with it.
        A film another named reader decided takes only a `second_read`, recorded as one. ClaimRefused otherwise."""
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision '{decision}'; choose one of {', '.join(DECISIONS)}")
        made = Decision(decision, note, reader, now(), ai_shown or {}, second_read=second_read)
        with self._transaction() as tx:
            self._lock_film(tx, film_id)
            holder = tx.one("SELECT reader FROM claims WHERE film_id = ? AND expires_at > {now}", (film_id,))
            if holder is not None and holder["reader"] != reader:
                raise self._refusal(tx, film_id, "the decision was not taken")
            current = tx.one("SELECT reader FROM decisions WHERE film_id = ? AND withdrawn_at IS NULL ORDER BY id "
                             "DESC LIMIT 1", (film_id,))
            # an unnamed decision (a viewer before its reader gave a name) is nobody else's
            by_another = current is not None and current["reader"] not in ("", reader)
            if by_another != second_read:
                path = tx.one("SELECT path FROM films WHERE id = ?", (film_id,))["path"]
                raise ClaimRefused(
                    f"film {film_id} ({path})", "the decision was not taken",
                    f"{current['reader'] or 'another reader'} decided it" if by_another else
                    "a second read is of a film another reader decided, and nobody else has",
                    "Ask for a second read (--second-read) to decide it again." if by_another else "")
            tx.execute("INSERT INTO decisions (film_id, decision, note, reader, decided_at, ai_shown, second_read) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (film_id, decision, note, reader, made.decided_at,
                                                        json.dumps(made.ai_shown), int(second_read)))
            tx.execute("DELETE FROM drafts WHERE film_id = ?", (film_id,))  # the note is saved with it now
            tx.execute("UPDATE films SET decided = 1 WHERE id = ?", (film_id,))
            tx.execute("DELETE FROM claims WHERE film_id = ? AND reader = ?", (film_id, reader))
            self._event(tx, film_id, reader, "second read" if second_read else "decide", decision)
        return made

    def withdraw(self, film_id: int, reader: str | None = None) -> Decision | None:
        """Undo: the film's current decision is withdrawn (kept in the history, marked with the time); the one
        before it, if any, is current again. Returns the withdrawn decision, or None when there was none.
        `reader` (default: the decision's own) is named in the history; another reader's claim refuses it."""
        with self._transaction() as tx:
            self._lock_film(tx, film_id)
            row = tx.one("SELECT id, reader FROM decisions WHERE film_id = ? AND withdrawn_at IS NULL "
                         "ORDER BY id DESC LIMIT 1", (film_id,))
            if row is None:
                return None
            by = row["reader"] if reader is None else reader
            if tx.one("SELECT 1 AS held FROM claims WHERE film_id = ? AND reader <> ? AND expires_at > {now}",
                      (film_id, by)):
                raise self._refusal(tx, film_id, "the decision was not withdrawn")
            tx.execute("UPDATE decisions SET withdrawn_at = ? WHERE id = ?", (now(), row["id"]))
            tx.execute(f"UPDATE films SET decided = {FILM_DECIDED} WHERE id = ?", (film_id,))  # one before it, or none
            self._event(tx, film_id, by, "withdraw", "" if by == row["reader"] else f"{row['reader']}'s decision")
        return _decision(self._query("SELECT * FROM decisions WHERE id = ?", (row["id"],))[0])

    # ----- note drafts: typed, not yet saved with a decision -----
    def set_draft(self, film_id: int, note: str) -> None:
        """Keep a note typed for a film that has not been decided with it yet ('' removes the draft)."""
        with self._transaction() as tx:
            if note:
                tx.execute("INSERT INTO drafts VALUES (?, ?, ?) ON CONFLICT (film_id) DO UPDATE SET note = "
                           "excluded.note, saved_at = excluded.saved_at", (film_id, note, now()))
            else:
                tx.execute("DELETE FROM drafts WHERE film_id = ?", (film_id,))

    def draft(self, film_id: int) -> str | None:
        rows = self._query("SELECT note FROM drafts WHERE film_id = ?", (film_id,))
        return rows[0]["note"] if rows else None

    def history(self, film_id: int) -> list[Decision]:
        return [_decision(r) for r in self._query("SELECT * FROM decisions WHERE film_id = ? ORDER BY id",
                                                  (film_id,))]

    # ----- measurements and annotations -----
    def set_marks(self, film_id: int, marks: list[Mark]) -> None:
        """Replace the film's measurements and annotations with `marks`, in one transaction."""
        with self._transaction() as tx:
            tx.execute("DELETE FROM marks WHERE film_id = ?", (film_id,))
            tx.executemany("INSERT INTO marks (film_id, kind, points, text, value, unit, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(film_id, m.kind, json.dumps([list(p) for p in m.points]), m.text, m.value, m.unit,
                             now()) for m in marks])

    def marks(self, film_id: int) -> list[Mark]:
        rows = self._query("SELECT * FROM marks WHERE film_id = ? ORDER BY id", (film_id,))
        return [Mark(r["kind"], [tuple(p) for p in json.loads(r["points"])], r["text"], r["value"], r["unit"])
                for r in rows]

    # ----- small state: where the reader left off -----
    def set_state(self, key: str, value: str) -> None:
        with self._transaction() as tx:
            tx.execute("INSERT INTO state VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (key, value))

    def state(self, key: str, default: str = "") -> str:
        rows = self._query("SELECT value FROM state WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def integrity(self) -> str:
        """SQLite's `PRAGMA integrity_check` answer ("ok" when sound); a server checks its own pages, so there
        "ok" means it answered."""
        if self.path is None:
            return "ok" if self._query("SELECT 1 AS up") else "no answer"
        return self._query("PRAGMA integrity_check")[0]["integrity_check"]


def _check_reader(reader: str) -> None:
    if not reader.strip():
        raise XRayViewerError(None, "no reader", "a claim is made in a reader's name",
                              "Give the name the reader goes by (--reader NAME).")


def _film(rows: Callable[[str, tuple], list[dict]], film_id: int) -> FilmRow:
    """One film read by `rows` (the store's query, or a transaction's): its row, results and current decision."""
    found = rows("SELECT * FROM films WHERE id = ?", (film_id,))
    if not found:
        raise KeyError(film_id)
    results = {r["model"]: _result(r) for r in rows("SELECT * FROM results WHERE film_id = ? ORDER BY model",
                                                     (film_id,))}
    decisions = rows("SELECT * FROM decisions WHERE film_id = ? AND withdrawn_at IS NULL ORDER BY id DESC LIMIT 1",
                     (film_id,))
    return FilmRow(film_id, _info(found[0]), results, _decision(decisions[0]) if decisions else None)


def _info(row: dict) -> FilmInfo:
    return FilmInfo(**{k: row[k] for k in FilmInfo.__dataclass_fields__})


def _result(row: dict) -> ModelResult:
    return ModelResult(row["model"], row["model_sha256"], row["provider"], row["threshold"], row["probability"],
                       row["label"], json.loads(row["refused"]), bool(row["out_of_scope"]), row["ood_score"])


def _decision(row: dict) -> Decision:
    return Decision(row["decision"], row["note"], row["reader"], row["decided_at"], json.loads(row["ai_shown"]),
                    row["withdrawn_at"], bool(row["second_read"]))

