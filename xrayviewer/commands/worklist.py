"""`xrayviewer worklist PATH... [--db FILE|URL] [--model NAME]...`: analyse every film not yet in the review store.

Prints one JSON line per film (status analysed, unchanged, moved or error). Resumable: killed half-way, a
re-run analyses only what is missing; new files are added, unchanged ones skipped by size, time and hash.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from xrayviewer.commands import command_parser, exit_status, note_skipped
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.review.store import DB_ENV, ReviewStore, default_db_path, location
from xrayviewer.core.review.worklist import Worklist


def add_db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=db_location, metavar="FILE|URL",
                   help=f"review database: a SQLite file, or a department's shared PostgreSQL database as "
                   f"postgresql://USER@HOST[:PORT]/DB[?sslmode=...] (password from PGPASSFILE, a service file or the "
                   f"URL; never printed) (default: ${DB_ENV}, else review.sqlite in the user's data folder: "
                   f"{default_db_path()} here); the viewer's review mode uses the same one")


def db_location(text: str) -> str | Path:
    """--db: a file or a postgresql:// URL (argparse's type: another URL is a usage error saying so)."""
    try:
        return location(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "worklist", "analyse folders of films into the review store; one JSON line each",
        "Analyse every film of the PATHs that is not yet in the review store and print one JSON line per film "
        "(status analysed, unchanged, moved or error). Resumable: a re-run analyses only what is missing; files "
        "unchanged by size, time and hash are skipped.",
        "  xrayviewer worklist studies/\n  xrayviewer worklist studies/ --model mobilenetv2 --model xception\n"
        "  xrayviewer worklist /data/films --db study.db\n"
        "  xrayviewer worklist /data/films --db postgresql://reading@dbhost/department")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_db_option(p)
    p.add_argument("--model", action="append", metavar="NAME",
                   help="shipped model name or .onnx path; repeat for several (default: mobilenetv2)")
    p.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "dml"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not any(os.path.lexists(p) for p in args.paths):  # nothing to analyse: no review database is made for it
        for path in args.paths:
            print(f"error: {path}: no such file or folder", file=sys.stderr)
        return exit_status(args.paths, len(args.paths))
    errors = 0
    with ReviewStore(args.db) as store:
        worklist = Worklist(store, Engine(args.provider), args.model or ["mobilenetv2"])
        for event in worklist.run(args.paths, skipped=note_skipped):
            errors += event.status == "error"
            print(json.dumps(event.as_dict()), flush=True)
        print(f"{store.name}: {len(store.films())} films", file=sys.stderr)
    return exit_status(args.paths, errors)
