"""`xrayviewer report [--db FILE|URL] [--csv OUT | --json OUT | --pdf OUT]`: the review store as a table and a summary.

One row per film (AI results, the reader's decision, agreement); the summary (counts, agreement, confusion of
reader vs AI per model) is printed as one JSON line, and is part of the --json file. --pdf prints the table under a
header (date, readers, counts, research use only, each model's threshold) as the viewer's export does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

from xrayviewer.commands import command_parser
from xrayviewer.commands.worklist import add_db_option
from xrayviewer.core.errors import OutputError, XRayViewerError
from xrayviewer.core.review import report as review_report
from xrayviewer.core.review.store import ReviewStore


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "report", "the reader's decisions against the AI results, as CSV, JSON or PDF",
        "Read the review store and print its summary as one JSON line: counts, agreement, and the confusion of the "
        "reader's decisions against each model's results. --csv writes one row per film (AI results, the reader's "
        "decision, agreement); --json writes the rows and the summary; --pdf prints the rows as a table under a header "
        "(date, readers, counts, each model and its threshold).",
        "  xrayviewer report\n  xrayviewer report --csv review.csv\n"
        "  xrayviewer report --db study.db --json review.json\n  xrayviewer report --pdf review.pdf")
    add_db_option(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", type=Path, metavar="OUT", help="write one row per film as CSV")
    out.add_argument("--json", type=Path, metavar="OUT", help="write the rows and the summary as JSON")
    out.add_argument("--pdf", type=Path, metavar="OUT", help="write the rows as a table under a header, as PDF")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if isinstance(args.db, Path) and not args.db.is_file():
        raise XRayViewerError(args.db, "no such review database", "the file does not exist",
                              "Run `xrayviewer worklist PATH --db FILE` first, or give the right file.")
    with ReviewStore(args.db) as store:
        films = store.films()
    table, summary = review_report.rows(films), review_report.summary(films)
    print(json.dumps(summary), flush=True)  # first: a file that cannot be written never loses the summary
    if args.csv:
        write_text(args.csv, review_report.to_csv(table))
    if args.json:
        write_text(args.json, json.dumps({"summary": summary, "films": table}, indent=1))
    if args.pdf:
        write_pdf_report(args.pdf, films)
    return 0


def write_pdf_report(path: Path, films: list) -> None:
    """The report's page printed by Qt (loaded only here); an unwritable place is an OutputError."""
    from xrayviewer.gui.report_file import write_pdf

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_pdf(review_report.page(films), path)
    except OSError as exc:
        raise OutputError(path, "cannot write the report", exc.strerror or str(exc),
                          "Choose another folder, or check its permissions and free space.") from None


def write_text(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so a crash never leaves half a report."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8", newline="")
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # not made, or on a read-only file system
            temporary.unlink()
        raise OutputError(path, "cannot write the report", exc.strerror or str(exc),
                          "Choose another folder, or check its permissions and free space.") from None
