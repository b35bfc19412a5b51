"""Where a review store lives and how to talk to it: a SQLite file (embedded, the default) or a PostgreSQL server.

`open_backend(location)` gives a `Backend`: `transaction()` (one write transaction, committed on leaving, rolled
back on any error), `query` outside one, and the few differences of its dialect. SQL is written once, with `?`
placeholders and the tokens `{serial}`, `{real}`, `{now}` (the database's clock, in seconds since 1970) and
`{lock}` (lock the rows read until the transaction ends: `FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE`
already holds the whole file) and `{skip_locked}` (the same for the film `f`, passing over films another
transaction holds: `FOR UPDATE OF f SKIP LOCKED`). A server is named by a URL,
`postgresql://[user[:password]@]host[:port]/db[?...]`: libpq reads the password from the URL, `PGPASSFILE`
(~/.pgpass) or a service file (`?service=NAME`), and every parameter, `sslmode` included, passes through. The
password is never printed: `masked` hides it in every message.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from xrayviewer.core.errors import XRayViewerError

SCHEMES = ("postgresql://", "postgres://")
POOL_SIZE = 4  # connections one process holds at most (the viewer, a listener, one `review` command)
CONNECT_S = 10
HIDDEN = "***"


def is_server(location: str | Path | None) -> bool:
    """Whether `location` names a PostgreSQL server rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(SCHEMES)


def masked(url: str) -> str:
    """`url` with its password (in the user part or a `password=` parameter) shown as ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.partition(':')[0]}:{HIDDEN}@{host}"
    query = "&".join(f"{k}={HIDDEN if k == 'password' else v}" for k, v in parse_qsl(parts.query, True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrubbed(text: str, url: str) -> str:
    """`text` (a driver's message) with any password of `url` in it replaced by ***."""
    parts = urlsplit(url)
    secrets = {parts.password or ""} | {v for k, v in parse_qsl(parts.query, True) if k == "password"}
    for secret in sorted(filter(None, secrets | {unquote(s) for s in secrets}), key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text


class StoreUnreachable(XRayViewerError, ConnectionError):
    """The database server cannot be reached or refused us (a ConnectionError too: a write that was not saved)."""


class Transaction:
    """The statements of one transaction; each takes `?` placeholders and the dialect's tokens."""

    def __init__(self, cursor, translate) -> None:
        self._cursor, self._translate = cursor, translate

    def execute(self, sql: str, args: tuple | list = ()) -> None:
        self._cursor.execute(self._translate(sql), tuple(args))

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        if rows:
            self._cursor.executemany(self._translate(sql), rows)

    def rows(self, sql: str, args: tuple | list = ()) -> list[dict]:
        self._cursor.execute(self._translate(sql), tuple(args))
        names = [d[0] for d in self._cursor.description]
        return [dict(zip(names, row)) for row in self._cursor.fetchall()]

    def one(self, sql: str, args: tuple | list = ()) -> dict | None:
        rows = self.rows(sql, args)
        return rows[0] if rows else None


class Dialect:
    """A back-end's SQL: the schema's and queries' tokens replaced by its own text (`TOKENS`)."""

    TOKENS: ClassVar[dict[str, str]] = {}

    @classmethod
    @cache
    def translate(cls, sql: str) -> str:
        for token, text in cls.TOKENS.items():
            sql = sql.replace(token, text)
        return sql


class SqliteBackend(Dialect):
    """One SQLite file in WAL mode, one connection shared by the threads of a process under a lock."""

    dialect = "sqlite"
    TOKENS: ClassVar[dict[str, str]] = {
        "{serial}": "INTEGER PRIMARY KEY", "{real}": "REAL", "{lock}": "", "{skip_locked}": "",
        "{now}": "((julianday('now') - 2440587.5) * 86400.0)"}

    def __init__(self, path: Path) -> None:
        self.path, self.name = path, str(path)
        self.lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """BEGIN IMMEDIATE ... COMMIT: the writer holds the file from the first statement, so a read followed by a
        write in one transaction sees no other writer in between."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self.db.cursor(), self.translate)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def query(self, sql: str, args: tuple | list = ()) -> list[dict]:
        with self.lock:
            return Transaction(self.db.cursor(), self.translate).rows(sql, args)

    def close(self) -> None:
        self.db.close()


class PostgresBackend(Dialect):
    """A PostgreSQL database through a psycopg 3 connection pool (connections checked before use, so one broken by
    a server restart is replaced)."""

    dialect = "postgresql"
    TOKENS: ClassVar[dict[str, str]] = {  # INTEGER first: ids, sizes and times in ns need 64 bits there too
        "INTEGER": "BIGINT", "{serial}": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "{real}": "DOUBLE PRECISION", "{lock}": " FOR UPDATE", "{skip_locked}": " FOR UPDATE OF f SKIP LOCKED",
        "{now}": "EXTRACT(EPOCH FROM clock_timestamp())::float8", "?": "%s"}

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url, self.path, self.name = url, None, masked(url)
        logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())  # its warnings may name the server
        options = {"autocommit": True, "connect_timeout": CONNECT_S, "application_name": "xrayviewer"}
        try:  # one connection first, for the server's own reason when it cannot be had
            psycopg.connect(url, **options).close()
        except psycopg.Error as exc:
            raise self.unreachable(exc) from None
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs=options, open=False, timeout=CONNECT_S,
                                   check=ConnectionPool.check_connection, name="xrayviewer")
        try:
            self.pool.open(wait=True, timeout=CONNECT_S)
        except Exception as exc:  # noqa: BLE001 - PoolTimeout, or the server went away in between
            raise self.unreachable(exc) from None

    def unreachable(self, exc: BaseException) -> StoreUnreachable:
        reason = scrubbed(" ".join(str(exc).split()) or type(exc).__name__, self.url)
        return StoreUnreachable(self.name, "cannot use the review database", reason,
                                "Check the server, the user and its password (in the URL, PGPASSFILE or a service "
                                "file), and sslmode.")

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """BEGIN ... COMMIT on one pooled connection (READ COMMITTED: rows are locked with `{lock}` where a read
        decides a write)."""
        import psycopg

        try:
            with self.pool.connection() as conn, conn.transaction():
                yield Transaction(conn.cursor(), self.translate)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self.unreachable(exc) from None

    def query(self, sql: str, args: tuple | list = ()) -> list[dict]:
        import psycopg

        try:
            with self.pool.connection() as conn:
                return Transaction(conn.cursor(), self.translate).rows(sql, args)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self.unreachable(exc) from None

    def close(self) -> None:
        self.pool.close()


Backend = SqliteBackend | PostgresBackend


def open_backend(location: str | Path, pool_size: int = POOL_SIZE) -> Backend:
    """A SQLite file for a path, a PostgreSQL pool for a postgresql:// URL."""
    if is_server(location):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise XRayViewerError(masked(str(location)), "cannot use a PostgreSQL review database",
                                  "psycopg is not installed", "pip install 'psycopg[binary]' psycopg_pool") from None
        return PostgresBackend(str(location), pool_size)
    return SqliteBackend(Path(location).expanduser())
