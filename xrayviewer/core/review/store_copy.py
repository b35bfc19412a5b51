"""Moving a review store to another database (a workstation's SQLite file onto the department's PostgreSQL server,
or back) with nothing lost: every table, every row, the same ids.

The target must hold no films. The copy is one transaction on the target: before it commits, each table is read
back from the target and compared with the source row by row (values and counts); any difference rolls it all
back, so the target is either a whole copy or unchanged.
"""

from __future__ import annotations

from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.migrations import TABLE_ORDER, columns
from xrayviewer.core.review.store import ReviewStore

SERIAL_TABLES = ("films", "decisions", "marks", "events")  # their ids come from a sequence on PostgreSQL


def copy_store(source: ReviewStore, target: ReviewStore) -> dict[str, int]:
    """Copy every table of `source` into the empty `target`; the number of rows of each table."""
    if target.counts()["films"]:
        raise XRayViewerError(target.name, "cannot copy into this review database", "it already holds films",
                              "Copy into a new, empty database.")
    counts: dict[str, int] = {}
    # one view of the source (its writers wait on SQLite) and one transaction on the target
    with source.backend.transaction() as read, target.backend.transaction() as tx:
        for table in TABLE_ORDER:
            names = columns(read, source.backend, table)
            wanted = set(columns(tx, target.backend, table))
            missing = [n for n in names if n not in wanted]
            if missing:
                raise XRayViewerError(target.name, "cannot copy into this review database",
                                      f"its table {table} has no column {', '.join(missing)}")
            listed = ", ".join(names)
            rows = [tuple(r[n] for n in names) for r in read.rows(f"SELECT {listed} FROM {table}")]
            tx.execute(f"DELETE FROM {table}")  # the target's own state (its schema version: the same)
            tx.executemany(f"INSERT INTO {table} ({listed}) VALUES ({', '.join('?' * len(names))})", rows)
            copied = [tuple(r[n] for n in names) for r in tx.rows(f"SELECT {listed} FROM {table}")]
            if sorted(rows, key=repr) != sorted(copied, key=repr):
                raise XRayViewerError(target.name, "the copy was rolled back",
                                      f"table {table} read back differs from {source.name} ({len(rows)} rows "
                                      f"there, {len(copied)} here)")
            counts[table] = len(rows)
        if target.backend.dialect == "postgresql":
            for table in SERIAL_TABLES:  # the next id follows the copied ones
                tx.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)")
    return counts
