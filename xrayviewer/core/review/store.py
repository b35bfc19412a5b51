"""The review store: films, AI results, reader decisions and measurements in one SQLite file (WAL).

One row per film (path, content hash, DICOM UIDs, patient and study fields), one row per film and model
(probability, label, refusal, model file hash), one row per reader decision (append-only: the latest is the
current one, each carries the AI result shown at that moment) and the film's measurements and annotations.
Every write is its own transaction, committed before the call returns, so a crash loses nothing decided.
The file lives in the user's data folder (`default_db_path`), never next to the films.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from xrayviewer.core.errors import XRayViewerError

DB_ENV = "XRAYVIEWER_DB"
DB_NAME = "review.sqlite"
DECISIONS = ("normal", "pneumonia", "uncertain", "other")
SCHEMA_VERSION = 2  # 2: accession, age and sex of each film; withdrawn decisions (undo); note drafts
SCHEMA = """
CREATE TABLE IF NOT EXISTS films (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    sop_uid TEXT NOT NULL DEFAULT '',
    study_uid TEXT NOT NULL DEFAULT '',
    series_uid TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    patient_name TEXT NOT NULL DEFAULT '',
    study_date TEXT NOT NULL DEFAULT '',
    study_description TEXT NOT NULL DEFAULT '',
    modality TEXT NOT NULL DEFAULT '',
    view_position TEXT NOT NULL DEFAULT '',
    accession TEXT NOT NULL DEFAULT '',
    patient_age TEXT NOT NULL DEFAULT '',
    patient_sex TEXT NOT NULL DEFAULT '',
    error TEXT,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS films_sha256 ON films(sha256);
CREATE TABLE IF NOT EXISTS results (
    film_id INTEGER NOT NULL REFERENCES films(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    provider TEXT NOT NULL DEFAULT '',
    threshold REAL,
    probability REAL,
    label TEXT,
    refused TEXT NOT NULL DEFAULT '[]',
    out_of_scope INTEGER NOT NULL DEFAULT 0,
    ood_score REAL,
    analysed_at TEXT NOT NULL,
    PRIMARY KEY (film_id, model)
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    film_id INTEGER NOT NULL REFERENCES films(id) ON DELETE CASCADE,
    decision TEXT NOT NULL CHECK (decision IN ('normal', 'pneumonia', 'uncertain', 'other')),
    note TEXT NOT NULL DEFAULT '',
    reader TEXT NOT NULL DEFAULT '',
    decided_at TEXT NOT NULL,
    ai_shown TEXT NOT NULL DEFAULT '{}',
    withdrawn_at TEXT
);
CREATE INDEX IF NOT EXISTS decisions_film ON decisions(film_id, id);
CREATE TABLE IF NOT EXISTS marks (
    id INTEGER PRIMARY KEY,
    film_id INTEGER NOT NULL REFERENCES films(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    points TEXT NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    value REAL,
    unit TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS marks_film ON marks(film_id);
CREATE TABLE IF NOT EXISTS drafts (
    film_id INTEGER PRIMARY KEY REFERENCES films(id) ON DELETE CASCADE,
    note TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
ADDED_COLUMNS = {  # columns newer than schema 1, added to an older store when it is opened
    "films": ("accession TEXT NOT NULL DEFAULT ''", "patient_age TEXT NOT NULL DEFAULT ''",
              "patient_sex TEXT NOT NULL DEFAULT ''"),
    "decisions": ("withdrawn_at TEXT",),
}


def default_db_path() -> Path:
    """`$XRAYVIEWER_DB`, else review.sqlite in the platform's per-user data folder."""
    if os.environ.get(DB_ENV):
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
    """A thread-safe handle on one review database; open with `ReviewStore(path)`, close when done."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self._transaction() as db:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                _add_columns(db)
                db.execute("INSERT OR REPLACE INTO state VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except (OSError, sqlite3.Error) as exc:
            raise XRayViewerError(self.path, "cannot open the review database", str(exc),
                                  f"Give another file with --db or ${DB_ENV}.") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "ReviewStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return locked_transaction(self.db, self._lock)

    def _query(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._lock:
            cursor = self.db.execute(sql, args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

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
        """Insert or update a film and its results in one transaction; returns the film id.

        `replace_results` drops the film's earlier results first (its content changed).
        """
        fields = [k for k in FilmInfo.__dataclass_fields__]
        values = [getattr(info, k) for k in fields]
        with self._transaction() as db:
            row = db.execute("SELECT id FROM films WHERE path = ?", (info.path,)).fetchone()
            if row is None:
                cursor = db.execute(f"INSERT INTO films ({', '.join(fields)}, added_at) VALUES "
                                    f"({', '.join('?' * (len(fields) + 1))})", (*values, now()))
                film_id = int(cursor.lastrowid)
            else:
                film_id = int(row[0])
                db.execute(f"UPDATE films SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                           (*values, film_id))
                if replace_results:
                    db.execute("DELETE FROM results WHERE film_id = ?", (film_id,))
            for r in results:
                db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (film_id, r.model, r.model_sha256, r.provider, r.threshold, r.probability, r.label,
                            json.dumps(r.refused), int(r.out_of_scope), r.ood_score, now()))
        return film_id

    def move_film(self, film_id: int, info: FilmInfo) -> None:
        """The same content found at a new path (the old one is gone): keep its results and decisions."""
        with self._transaction() as db:
            db.execute("UPDATE films SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
                       (info.path, info.size, info.mtime_ns, film_id))

    def touch_film(self, film_id: int, mtime_ns: int) -> None:
        """The file was touched but its content is the same."""
        with self._transaction() as db:
            db.execute("UPDATE films SET mtime_ns = ? WHERE id = ?", (mtime_ns, film_id))

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
        rows = self._query("SELECT * FROM films WHERE id = ?", (film_id,))
        if not rows:
            raise KeyError(film_id)
        results = {r["model"]: _result(r) for r in self._query(
            "SELECT * FROM results WHERE film_id = ? ORDER BY model", (film_id,))}
        decisions = self._query("SELECT * FROM decisions WHERE film_id = ? AND withdrawn_at IS NULL ORDER BY id DESC "
                                "LIMIT 1", (film_id,))
        return FilmRow(film_id, _info(rows[0]), results, _decision(decisions[0]) if decisions else None)

    # ----- decisions -----
    def decide(self, film_id: int, decision: str, note: str = "", reader: str = "",
               ai_shown: dict | None = None) -> Decision:
        """Record a reader's decision at once (committed before returning); earlier ones stay as history."""
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision '{decision}'; choose one of {', '.join(DECISIONS)}")
        made = Decision(decision, note, reader, now(), ai_shown or {})
        with self._transaction() as db:
            db.execute("INSERT INTO decisions (film_id, decision, note, reader, decided_at, ai_shown) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (film_id, decision, note, reader, made.decided_at,
                                                     json.dumps(made.ai_shown)))
            db.execute("DELETE FROM drafts WHERE film_id = ?", (film_id,))  # the note is saved with it now
        return made

    def withdraw(self, film_id: int) -> Decision | None:
        """Undo: the film's current decision is withdrawn (kept in the history, marked with the time); the one
        before it, if any, is current again. Returns the withdrawn decision, or None when there was none."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM decisions WHERE film_id = ? AND withdrawn_at IS NULL "
                             "ORDER BY id DESC LIMIT 1", (film_id,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE decisions SET withdrawn_at = ? WHERE id = ?", (now(), row[0]))
        return _decision(self._query("SELECT * FROM decisions WHERE id = ?", (row[0],))[0])

    # ----- note drafts: typed, not yet saved with a decision -----
    def set_draft(self, film_id: int, note: str) -> None:
        """Keep a note typed for a film that has not been decided with it yet ('' removes the draft)."""
        with self._transaction() as db:
            if note:
                db.execute("INSERT OR REPLACE INTO drafts VALUES (?, ?, ?)", (film_id, note, now()))
            else:
                db.execute("DELETE FROM drafts WHERE film_id = ?", (film_id,))

    def draft(self, film_id: int) -> str | None:
        rows = self._query("SELECT note FROM drafts WHERE film_id = ?", (film_id,))
        return rows[0]["note"] if rows else None

    def history(self, film_id: int) -> list[Decision]:
        return [_decision(r) for r in self._query("SELECT * FROM decisions WHERE film_id = ? ORDER BY id",
                                                  (film_id,))]

    # ----- measurements and annotations -----
    def set_marks(self, film_id: int, marks: list[Mark]) -> None:
        """Replace the film's measurements and annotations with `marks`, in one transaction."""
        with self._transaction() as db:
            db.execute("DELETE FROM marks WHERE film_id = ?", (film_id,))
            for m in marks:
                db.execute("INSERT INTO marks (film_id, kind, points, text, value, unit, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (film_id, m.kind, json.dumps([list(p) for p in m.points]), m.text, m.value, m.unit,
                            now()))

    def marks(self, film_id: int) -> list[Mark]:
        rows = self._query("SELECT * FROM marks WHERE film_id = ? ORDER BY id", (film_id,))
        return [Mark(r["kind"], [tuple(p) for p in json.loads(r["points"])], r["text"], r["value"], r["unit"])
                for r in rows]

    # ----- small state: where the reader left off -----
    def set_state(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    def state(self, key: str, default: str = "") -> str:
        rows = self._query("SELECT value FROM state WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def integrity(self) -> str:
        """SQLite's `PRAGMA integrity_check` answer ("ok" when sound)."""
        return self._query("PRAGMA integrity_check")[0]["integrity_check"]


def _info(row: dict) -> FilmInfo:
    return FilmInfo(**{k: row[k] for k in FilmInfo.__dataclass_fields__})


def _result(row: dict) -> ModelResult:
    return ModelResult(row["model"], row["model_sha256"], row["provider"], row["threshold"], row["probability"],
                       row["label"], json.loads(row["refused"]), bool(row["out_of_scope"]), row["ood_score"])


def _decision(row: dict) -> Decision:
    return Decision(row["decision"], row["note"], row["reader"], row["decided_at"], json.loads(row["ai_shown"]),
                    row["withdrawn_at"])


def _add_columns(db: sqlite3.Connection) -> None:
    """Bring a store made by an older version up to this schema (its rows keep their values)."""
    for table, columns in ADDED_COLUMNS.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column in columns:
            if column.split()[0] not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
