"""The review store's schema in versioned steps, run the same way on SQLite and PostgreSQL.

The store's version is kept in its `state` table (`schema_version`). Opening a store runs, in one transaction, each
step above its version (a store made before versions were kept counts as 0): a store of an older release opens
unchanged, its rows keeping their values. On PostgreSQL the transaction first takes an advisory lock, so nodes
and workstations opening a new database at once create it once.
"""

from __future__ import annotations

from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.store_sql import Backend, Transaction

MIGRATION_LOCK = 2718_0027  # the PostgreSQL advisory lock held while the schema changes

TABLES = """
CREATE TABLE IF NOT EXISTS films (
    id {serial},
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
    threshold {real},
    probability {real},
    label TEXT,
    refused TEXT NOT NULL DEFAULT '[]',
    out_of_scope INTEGER NOT NULL DEFAULT 0,
    ood_score {real},
    analysed_at TEXT NOT NULL,
    PRIMARY KEY (film_id, model)
);
CREATE TABLE IF NOT EXISTS decisions (
    id {serial},
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
    id {serial},
    film_id INTEGER NOT NULL REFERENCES films(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    points TEXT NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    value {real},
    unit TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS marks_film ON marks(film_id);
CREATE TABLE IF NOT EXISTS drafts (
    film_id INTEGER PRIMARY KEY REFERENCES films(id) ON DELETE CASCADE,
    note TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)
"""
SCHEMA_2_COLUMNS = {  # columns newer than schema 1, added to a store of schema 1
    "films": ("accession TEXT NOT NULL DEFAULT ''", "patient_age TEXT NOT NULL DEFAULT ''",
              "patient_sex TEXT NOT NULL DEFAULT ''"),
    "decisions": ("withdrawn_at TEXT",),
}
CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    film_id INTEGER PRIMARY KEY REFERENCES films(id) ON DELETE CASCADE,
    reader TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    expires_at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id {serial},
    film_id INTEGER NOT NULL REFERENCES films(id) ON DELETE CASCADE,
    reader TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('claim', 'release', 'decide', 'second read', 'withdraw')),
    detail TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_film ON events(film_id, id)
"""
# a film's suspicion as FilmRow.suspicion gives it (the highest probability of a result not refused; refused or
# unanalysed: -1) and whether it has a current decision, from its rows in results and decisions
FILM_SUSPICION = ("COALESCE((SELECT MAX(r.probability) FROM results r WHERE r.film_id = films.id AND "
                  "r.refused = '[]'), -1.0)")
FILM_DECIDED = ("CASE WHEN EXISTS (SELECT 1 FROM decisions d WHERE d.film_id = films.id AND d.withdrawn_at IS NULL) "
                "THEN 1 ELSE 0 END")


def _tables(tx: Transaction, backend: Backend) -> None:
    """2: films, results, decisions (withdrawn ones kept), marks, note drafts and state; a store of schema 1
    gains the accession, age and sex of each film and the withdrawal time of each decision."""
    _run(tx, TABLES)
    for table, columns in SCHEMA_2_COLUMNS.items():
        _add_columns(tx, backend, table, columns)


def _claims(tx: Transaction, backend: Backend) -> None:
    """3: claims with leases, the history of claims, decisions and withdrawals by reader, second reads."""
    _run(tx, CLAIMS)
    _add_columns(tx, backend, "decisions", ("second_read INTEGER NOT NULL DEFAULT 0",))


def _unread_index(tx: Transaction, backend: Backend) -> None:
    """4: each film's suspicion and whether it is decided, kept on its row by the store's writes (filled here from
    the results and decisions already there), and an index of the undecided films, most suspicious first: the next
    film to claim is the first entry of the index that nobody holds, not a sort of every film."""
    _add_columns(tx, backend, "films", ("suspicion {real} NOT NULL DEFAULT -1", "decided INTEGER NOT NULL DEFAULT 0"))
    tx.execute(f"UPDATE films SET suspicion = {FILM_SUSPICION}, decided = {FILM_DECIDED}")
    tx.execute("CREATE INDEX IF NOT EXISTS films_unread ON films (suspicion DESC, id) WHERE decided = 0")


STEPS = {2: _tables, 3: _claims, 4: _unread_index}
LATEST = max(STEPS)
TABLE_ORDER = ("films", "results", "decisions", "marks", "drafts", "state", "claims", "events")  # parents first


def migrate(backend: Backend, upto: int = LATEST) -> int:
    """Bring the store up to `upto` (an older version only to make a store as an older release did) in one
    transaction; returns the version it had (0: a new store)."""
    with backend.transaction() as tx:
        if backend.dialect == "postgresql":
            tx.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        found = version(tx, backend)
        if found > LATEST:
            raise XRayViewerError(backend.name, "cannot open the review database",
                                  f"it has schema {found}, made by a newer XRay Viewer (this one knows {LATEST})",
                                  "Update XRay Viewer on this machine.")
        for step in sorted(STEPS):
            if found < step <= upto:
                STEPS[step](tx, backend)
        tx.execute("INSERT INTO state VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = "
                   "excluded.value", (str(max(found, upto)),))
    return found


def version(tx: Transaction, backend: Backend) -> int:
    if "state" not in tables(tx, backend):
        return 0
    row = tx.one("SELECT value FROM state WHERE key = 'schema_version'")
    return int(row["value"]) if row else 0


def tables(tx: Transaction, backend: Backend) -> set[str]:
    if backend.dialect == "sqlite":
        return {r["name"] for r in tx.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {r["table_name"] for r in tx.rows(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}


def columns(tx: Transaction, backend: Backend, table: str) -> list[str]:
    """The table's columns in their order."""
    if backend.dialect == "sqlite":
        return [r["name"] for r in tx.rows(f"PRAGMA table_info({table})")]
    return [r["column_name"] for r in tx.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND "
        "table_name = ? ORDER BY ordinal_position", (table,))]


def _add_columns(tx: Transaction, backend: Backend, table: str, wanted: tuple[str, ...]) -> None:
    have = set(columns(tx, backend, table))
    for column in wanted:
        if column.split()[0] not in have:
            tx.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


def _run(tx: Transaction, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            tx.execute(statement)
