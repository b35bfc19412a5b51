"""The node's durable outbox: the DICOM objects derived from each analysed film, stored on a PACS node (C-STORE)
into the film's own study, once each, however long the node is down and across restarts (kill -9 included).

Deriving (one thread): a film's result - its fingerprint: the film's content, each model's result, the reader's
current decision and the marks - is derived once per node into its objects (SR, Parametric Map and SC; a refused
film only its SR), each written atomically into the outbox folder, then recorded 'pending' in one transaction of the
outbox's SQLite file (WAL, synchronous FULL). A crash before that commit leaves files no row names (removed at the
next start) and the film is derived again; a film whose fingerprint is recorded is never derived again for that
node. The objects' UIDs are made from what they depend on, so a result derived again gives the same objects.

Sending (another thread): the due objects of one film go on one association, in the order derived. Success marks
them 'sent' and removes their files. A node that does not answer, or is out of resources, is tried again with
back-off (BACKOFF_S doubling to BACKOFF_MAX_S), nothing dropped; an object the node refuses with a failure status
is 'failed' with the node's reason, and tried again at the next start. A kill between the node's success and the
mark sends the object again at the next start under the same SOP Instance UID, which a PACS keeps once.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID

from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.pacs import PacsError, send, write_atomically
from xrayviewer.core.review.pacs_nodes import DEFAULT_AET, Node
from xrayviewer.core.review.store import FilmRow, Mark, ReviewStore, locked_transaction, now
from xrayviewer.core.review.worklist import film_path

BACKOFF_S = 2.0  # the first wait after a failed send; doubled at each failure in a row
BACKOFF_MAX_S = 300.0  # the longest wait: a node back up is served within five minutes
TRANSIENT = re.compile(r"status 0xA7[0-9A-F]{2}")  # out of resources: the node may take it later
REFUSED = re.compile(r"C-STORE of (?P<file>\S+) failed with status (?P<status>0x[0-9A-F]{4})")
KINDS = {"Parametric Map": "PM", "Secondary Capture": "SC"}  # words of the SOP class's name; else SR
SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    node TEXT NOT NULL,
    sop_uid TEXT NOT NULL,
    film_id INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    kind TEXT NOT NULL,
    position INTEGER NOT NULL,
    file TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    queued_at TEXT NOT NULL,
    sent_at TEXT,
    PRIMARY KEY (node, sop_uid)
);
CREATE INDEX IF NOT EXISTS objects_due ON objects(node, state, next_try);
CREATE TABLE IF NOT EXISTS derived (
    node TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    film_id INTEGER NOT NULL,
    error TEXT,
    derived_at TEXT NOT NULL,
    PRIMARY KEY (node, fingerprint)
);
CREATE TABLE IF NOT EXISTS nodes (node TEXT PRIMARY KEY, last_film_before INTEGER NOT NULL, opened_at TEXT NOT NULL);
"""

Derive = Callable[[ReviewStore, FilmRow], list[Dataset]]


def outbox_folder(store_path: Path) -> Path:
    """Where a review store's outbox lives: a folder beside it (its SQLite file and the objects not yet sent)."""
    return store_path.with_name(f"{store_path.name}.outbox")


def fingerprint(film: FilmRow, marks: list[Mark]) -> str:
    """What the derived objects depend on: the film's content, each model's result, the current decision and the
    marks."""
    d = film.decision
    key = {"film": film.info.sha256, "results": {m: r.as_dict() for m, r in sorted(film.results.items())},
           "decision": None if d is None else [d.decision, d.note, d.reader, d.decided_at],
           "marks": [[m.kind, m.points, m.text, m.value, m.unit] for m in marks]}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def kind_of(dataset: Dataset) -> str:
    """SR, PM (Parametric Map) or SC, from the SOP class."""
    name = UID(str(dataset.SOPClassUID)).name
    return next((kind for words, kind in KINDS.items() if words in name), "SR")


def backoff(failures: int) -> float:
    """Seconds to wait after the node failed `failures` tries in a row."""
    return min(BACKOFF_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S)


def export_objects(engine: Engine) -> Derive:
    """A film's objects as `dicom_export.derived_objects` makes them: the stored model analyses it again (the store
    keeps no heatmap) and the SR names the reader's decision before the current one as its predecessor."""
    from xrayviewer.core.reading.display import to_display
    from xrayviewer.core.reading.reader import read_image
    from xrayviewer.core.review.dicom_export import derived_objects
    from xrayviewer.core.review.report_image import Reading

    def derive(store: ReviewStore, film: FilmRow) -> list[Dataset]:
        record = read_image(film.info.path)
        stored = next(iter(film.results.values()))
        model = engine.model(stored.model)
        analysis = engine.analyze(model, to_display(record), record=record, force=stored.out_of_scope)
        decisions = [d for d in store.history(film.id) if d.withdrawn_at is None]
        reading = Reading(record, analysis, film.decision, tuple(store.marks(film.id)), model.digest)
        return derived_objects(reading, decisions[-2] if len(decisions) > 1 else None)

    return derive


class Outbox:
    """A durable queue of derived objects for one node; `start()`, `add(film_id)` per analysed film, `stop()`."""

    def __init__(self, store: ReviewStore, node: Node, derive: Derive, report: Callable[[dict], None],
                 aet: str = DEFAULT_AET, folder: Path | None = None) -> None:
        self.store, self.node, self.derive, self.report, self.aet = store, node, derive, report, aet
        self.folder = folder or outbox_folder(store.local_path)
        self._lock = threading.RLock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.folder / "outbox.sqlite", timeout=10, check_same_thread=False,
                                      isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            with self._transaction() as db:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR IGNORE INTO nodes VALUES (?, ?, ?)",
                           (node.address, max((f.id for f in store.films()), default=0), now()))
        except (OSError, sqlite3.Error) as exc:
            raise XRayViewerError(self.folder, "cannot open the outbox", str(exc),
                                  "Give the review store a folder you can write to (--db).") from None
        self._films: queue.Queue[int | FilmRow | None] = queue.Queue()
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._resume_at = 0.0  # the node failed: nothing is tried before this (time.time())
        self._failures = 0  # tries in a row that the node did not take: the back-off's exponent
        self._deriver = threading.Thread(target=self._derive_loop, name="outbox-derive", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name="outbox-send", daemon=True)

    # ----- life cycle -----
    def start(self, received: Path | None = None) -> None:
        """Start both threads: what was pending or failed is due now, files no row names are removed, and the
        analysed films under `received` that this node has not had since the outbox first served it are derived
        (those whose objects could not be made, again)."""
        with self._transaction() as db:
            db.execute("UPDATE objects SET state = 'pending', next_try = 0 WHERE node = ? AND state != 'sent'",
                       (self.node.address,))
            db.execute("DELETE FROM derived WHERE node = ? AND error IS NOT NULL", (self.node.address,))
        pending = self._query("SELECT fingerprint, file FROM objects WHERE node = ? AND state = 'pending'",
                              (self.node.address,))
        for key in {key for key, file in pending if not (self.folder / file).is_file()}:
            self._derive_again(key)  # an object's file was removed by hand
        kept = set(self._pending_files())
        for path in self.folder.iterdir():  # written by a run killed before it recorded them, or half-written
            if path.is_file() and not path.name.startswith("outbox.sqlite") and path.name not in kept:
                path.unlink(missing_ok=True)
        self._deriver.start()
        self._sender.start()
        if received is not None:
            self._catch_up(received)

    def stop(self) -> None:
        """Derive what was added (so that it is kept), finish the send in progress, then stop."""
        if self._deriver.is_alive():
            self._films.put(None)
            self._deriver.join()
        self._stopping.set()
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join()
        self.db.close()

    def add(self, film_id: int) -> None:
        """A film was analysed (or pushed again): derive and queue its objects unless its result was."""
        self._films.put(film_id)

    def take(self, line: dict) -> None:
        """A listener's report line: a film analysed, or pushed again (its objects may be due), is added."""
        if line.get("status") in ("analysed", "unchanged", "moved") and line.get("film_id") is not None:
            self.add(int(line["film_id"]))

    def _catch_up(self, received: Path) -> None:
        (since,) = self._query("SELECT last_film_before FROM nodes WHERE node = ?", (self.node.address,))[0]
        folder = film_path(received)
        for film in self.store.films():
            if film.id > since and film.results and Path(film.info.path).parent == folder:
                self._films.put(film)

    # ----- deriving -----
    def _derive_loop(self) -> None:
        while (item := self._films.get()) is not None:
            try:
                self._derive_film(self.store.film(item) if isinstance(item, int) else item)
            except Exception as exc:  # noqa: BLE001 - one film's failure is reported; the outbox goes on
                self._emit({"status": "outbox_error", "film_id": item if isinstance(item, int) else item.id,
                            "error": f"{type(exc).__name__}: {exc}"})

    def _derive_film(self, film: FilmRow) -> None:
        film_id = film.id
        if not film.results or film.info.error:
            return
        key = fingerprint(film, self.store.marks(film_id))
        if self._query("SELECT 1 FROM derived WHERE node = ? AND fingerprint = ?", (self.node.address, key)):
            return
        try:
            objects = self.derive(self.store, film)
        except OSError:
            raise  # the disk, not the film: derived again at the next start
        except Exception as exc:  # noqa: BLE001 - recorded, so that the film is not derived again and again
            with self._transaction() as db:
                db.execute("INSERT OR REPLACE INTO derived VALUES (?, ?, ?, ?, ?)",
                           (self.node.address, key, film_id, f"{type(exc).__name__}: {exc}", now()))
            raise
        files = [write_atomically(self.folder, _encoded(ds)).name for ds in objects]
        due = max(time.time(), self._resume_at)
        with self._transaction() as db:
            for position, (ds, file) in enumerate(zip(objects, files)):
                db.execute("INSERT OR IGNORE INTO objects (node, sop_uid, film_id, fingerprint, kind, position, file, "
                           "state, next_try, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                           (self.node.address, str(ds.SOPInstanceUID), film_id, key, kind_of(ds), position, file,
                            due, now()))
            db.execute("INSERT OR REPLACE INTO derived VALUES (?, ?, ?, NULL, ?)", (self.node.address, key, film_id,
                                                                                      now()))
            queued = {r[0]: r[1] for r in db.execute("SELECT sop_uid, kind FROM objects WHERE node = ? AND "
                                                     "fingerprint = ? AND state = 'pending' ORDER BY position",
                                                     (self.node.address, key))}
        for file in set(files) - set(self._pending_files()):
            (self.folder / file).unlink(missing_ok=True)  # already sent under the same UID: nothing to add
        self._emit({"status": "outbox_queued", "node": self.node.address, "film_id": film_id,
                    "path": film.info.path, "objects": queued})
        self._wake.set()

    # ----- sending -----
    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            wait = self._send_due()
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()

    def _send_due(self) -> float:
        """Send one film's due objects; the seconds to wait before the next look (0: look again at once)."""
        clock = time.time()
        if clock < self._resume_at:
            return self._resume_at - clock
        rows = self._query("SELECT fingerprint FROM objects WHERE node = ? AND state = 'pending' AND next_try <= ? "
                           "ORDER BY next_try, film_id LIMIT 1", (self.node.address, clock))
        if not rows:
            later = self._query("SELECT MIN(next_try) FROM objects WHERE node = ? AND state = 'pending'",
                                (self.node.address,))[0][0]
            return 60.0 if later is None else max(min(later - clock, 60.0), 0.05)
        group = self._query("SELECT sop_uid, kind, file, attempts, film_id FROM objects WHERE node = ? AND "
                            "fingerprint = ? AND state = 'pending' ORDER BY position", (self.node.address, rows[0][0]))
        started = time.monotonic()
        try:
            send(self.node, [self.folder / file for _, _, file, _, _ in group], self.aet)
        except PacsError as exc:
            self._failed(group, exc)
            return 0.0
        except OSError:  # an object's file is gone (removed by hand): the film is derived again
            self._derive_again(rows[0][0])
            return 0.0
        except Exception as exc:  # noqa: BLE001 - e.g. the node accepted no context for an object: tried later
            self._failed(group, PacsError(self.node, f"{type(exc).__name__}: {exc}"))
            return 0.0
        self._mark_sent([uid for uid, *_ in group])
        for _, _, file, _, _ in group:
            (self.folder / file).unlink(missing_ok=True)
        self._resume_at, self._failures = 0.0, 0
        self._emit({"status": "sent", "node": self.node.address, "film_id": group[0][4],
                    "objects": {uid: kind for uid, kind, *_ in group},
                    "seconds": round(time.monotonic() - started, 3)})
        return 0.0

    def _failed(self, group: list[tuple], exc: PacsError) -> None:
        """A send failed: objects the node stored before are sent, one it refused is failed, the rest wait."""
        why = exc.why
        refused = REFUSED.search(why)
        files = [file for _, _, file, _, _ in group]
        refused_at = files.index(refused["file"]) if refused and refused["file"] in files else None
        if refused_at is not None and not TRANSIENT.search(why):
            self._mark_sent([uid for uid, *_ in group[:refused_at]])
            uid, kind, _, attempts, film_id = group[refused_at]
            with self._transaction() as db:
                db.execute("UPDATE objects SET state = 'failed', attempts = ?, error = ? WHERE node = ? AND "
                           "sop_uid = ?", (attempts + 1, why, self.node.address, uid))
            self._emit({"status": "send_failed", "node": self.node.address, "film_id": film_id, "object": uid,
                        "kind": kind, "error": why})
            return
        self._failures += 1
        delay = backoff(self._failures)
        self._resume_at = time.time() + delay
        with self._transaction() as db:
            db.executemany("UPDATE objects SET attempts = attempts + 1, error = ? WHERE node = ? AND sop_uid = ?",
                           [(why, self.node.address, uid) for uid, *_ in group])
            db.execute("UPDATE objects SET next_try = MAX(next_try, ?) WHERE node = ? AND state = 'pending'",
                       (self._resume_at, self.node.address))
        self._emit({"status": "send_deferred", "node": self.node.address, "film_id": group[0][4],
                    "error": why, "attempts": max(a for *_, a, _ in group) + 1, "retry_in_s": delay})

    def _derive_again(self, key: str) -> None:
        """The objects of a result that are not sent are forgotten, and its film derived again."""
        with self._transaction() as db:
            film = db.execute("SELECT film_id FROM derived WHERE node = ? AND fingerprint = ?",
                              (self.node.address, key)).fetchone()
            db.execute("DELETE FROM objects WHERE node = ? AND fingerprint = ? AND state != 'sent'",
                       (self.node.address, key))
            db.execute("DELETE FROM derived WHERE node = ? AND fingerprint = ?", (self.node.address, key))
        if film is not None:
            self.add(film[0])

    def _mark_sent(self, uids: list[str]) -> None:
        with self._transaction() as db:
            db.executemany("UPDATE objects SET state = 'sent', sent_at = ?, error = '' WHERE node = ? AND "
                           "sop_uid = ?", [(now(), self.node.address, uid) for uid in uids])

    def _pending_files(self) -> list[str]:
        return [r[0] for r in self._query("SELECT file FROM objects WHERE state != 'sent'")]

    # ----- the database -----
    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return locked_transaction(self.db, self._lock)

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    def _emit(self, line: dict) -> None:
        self.report(line)


def _encoded(dataset: Dataset) -> bytes:
    """`dataset` as a DICOM file (preamble, meta header)."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
