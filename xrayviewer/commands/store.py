"""`xrayviewer store copy FROM TO`: move a review store to another database with nothing lost."""

from __future__ import annotations

import argparse
import json
import sys

from xrayviewer.commands import command_parser
from xrayviewer.commands.worklist import db_location


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "store", "copy a review store (a SQLite file to a PostgreSQL database, or back)",
        "Manage review stores. `copy` moves every film, result, decision, withdrawal, mark, draft, claim and history "
        "line from FROM to TO, keeping their ids, and compares every table row by row before it commits: TO is "
        "either a whole copy or unchanged. TO must hold no films. Passwords are never printed.",
        "  xrayviewer store copy ~/.local/share/xrayviewer/review.sqlite postgresql://reading@dbhost/department\n"
        "  xrayviewer store copy postgresql://reading@dbhost/department backup.sqlite")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    copy = command_parser(
        actions, "copy", "copy every table of a store into an empty one; one JSON line",
        "Copy the review store FROM into the empty store TO (a SQLite file or a postgresql:// URL; made when "
        "missing) and print one JSON line: from, to and the rows of each table, each compared.",
        "  xrayviewer store copy review.sqlite 'postgresql://reading@dbhost/department?sslmode=verify-full'")
    copy.add_argument("source", metavar="FROM", type=db_location, help="the store to copy: a file or a URL")
    copy.add_argument("target", metavar="TO", type=db_location, help="an empty store: a file or a URL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xrayviewer.core.errors import XRayViewerError
    from xrayviewer.core.review.store import ReviewStore
    from xrayviewer.core.review.store_copy import copy_store

    if isinstance(args.source, Path) and not args.source.is_file():
        raise XRayViewerError(args.source, "no such review database", "the file does not exist")
    if isinstance(args.source, Path) and isinstance(args.target, Path) and \
            args.target.exists() and args.source.samefile(args.target):
        raise XRayViewerError(args.target, "cannot copy a store onto itself", "FROM and TO are the same file")
    with ReviewStore(args.source, pool_size=1) as source, ReviewStore(args.target, pool_size=1) as target:
        counts = copy_store(source, target)
        print(json.dumps({"from": source.name, "to": target.name, "tables": counts, "compared": True}), flush=True)
        print(f"{target.name}: {counts['films']} films, {counts['decisions']} decisions copied and compared",
              file=sys.stderr)
    return 0
