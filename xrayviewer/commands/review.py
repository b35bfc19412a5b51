"""`xrayviewer review next|decide|release|status`: read a shared worklist from scripts, one reader per process.

`next` claims the most suspicious film nobody holds or decided and prints it as one JSON line (exit 3 when none is
left); `decide` records the reader's decision on it (exit 1 with one line when another reader holds the film or
decided it without --second-read); `status` prints the counts as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys

from xrayviewer.commands import command_parser
from xrayviewer.commands.worklist import add_db_option
from xrayviewer.core.review.store import DECISIONS, LEASE_S

NOTHING_LEFT = 3  # `review next`: every film is decided or held by another reader


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "review", "claim the next film, decide it, see who reads what (a shared worklist)",
        "Read a review store's worklist as one of several readers: each film is handed to one reader at a time (a "
        "claim with a lease, renewed by reading on; it runs out when a workstation dies), the most suspicious "
        "undecided film first. Every claim, decision, second read and withdrawal is kept in the film's history "
        "under the name the reader gives.",
        "  xrayviewer review next --db postgresql://reading@dbhost/department --reader 'Dr Ada Lovelace'\n"
        "  xrayviewer review decide 42 --decision pneumonia --note 'right lower lobe' --reader 'Dr Ada Lovelace'\n"
        "  xrayviewer review decide 42 --decision normal --second-read --reader 'Dr Grace Hopper'\n"
        "  xrayviewer review status --db postgresql://reading@dbhost/department")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    nxt = command_parser(
        actions, "next", "claim the next film; one JSON line (exit 3: none left)",
        "Claim the film this reader already holds, else the most suspicious film that nobody holds and nobody "
        "decided, and print it as one JSON line: film (its id in the store), path, reader, lease_s, suspicion, "
        "results, error. Exit 3 with a line on stderr when nothing is left to claim.",
        "  xrayviewer review next --reader 'Dr Ada Lovelace' --lease 300")
    add_reader_options(nxt)
    nxt.add_argument("--lease", type=lease, default=LEASE_S, metavar="SECONDS",
                     help=f"how long the claim holds unless renewed (default {LEASE_S:g} s)")
    decide = command_parser(
        actions, "decide", "record a reader's decision on a film; one JSON line",
        "Record the decision on FILM (its id from `review next`, or its path). It is taken from the reader holding "
        "the film's claim, or on a film nobody holds or decided; a film another reader decided takes only a "
        "--second-read, kept as one. Otherwise exit 1 with one line saying who holds or decided it.",
        "  xrayviewer review decide 42 --decision normal --reader 'Dr Ada Lovelace'\n"
        "  xrayviewer review decide /films/a.dcm --decision other --note 'rotated' --reader 'Dr Ada Lovelace'")
    decide.add_argument("film", metavar="FILM", help="the film's id in the store, or its path")
    decide.add_argument("--decision", required=True, choices=DECISIONS)
    decide.add_argument("--note", default="", help="the reader's note, kept with the decision")
    decide.add_argument("--second-read", action="store_true",
                        help="decide a film another reader decided: kept as a second read beside theirs")
    add_reader_options(decide)
    release = command_parser(
        actions, "release", "give a claimed film back undecided",
        "Give FILM back: the next reader asking for a film may be handed it.",
        "  xrayviewer review release 42 --reader 'Dr Ada Lovelace'")
    release.add_argument("film", metavar="FILM", help="the film's id in the store, or its path")
    add_reader_options(release)
    status = command_parser(
        actions, "status", "films, decided, claimed and unread as one JSON line",
        "Print the store's counts as one JSON line: films, decided (a current decision), claimed (held by a "
        "reader, undecided), unread (neither), and the live claims by reader.",
        "  xrayviewer review status --db postgresql://reading@dbhost/department")
    add_db_option(status)
    p.set_defaults(func=run)


def add_reader_options(p: argparse.ArgumentParser) -> None:
    add_db_option(p)
    p.add_argument("--reader", required=True, metavar="NAME",
                   help="the reader's name as they want it in the history (not the login)")


def lease(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"'{text}' is not a lease; give seconds above 0, at most 86400")
    return value


def run(args: argparse.Namespace) -> int:
    from xrayviewer.core.review.store import ReviewStore

    with ReviewStore(args.db, pool_size=1) as store:
        if args.action == "status":
            readers: dict[str, int] = {}
            for claim in store.claims().values():
                readers[claim.reader] = readers.get(claim.reader, 0) + 1
            print(json.dumps({**store.counts(), "readers": readers}), flush=True)
            return 0
        if args.action == "next":
            film = store.claim_next(args.reader, args.lease)
            if film is None:
                counts = store.counts()
                print(f"{store.name}: nothing left to read ({counts['films']} films, {counts['decided']} decided, "
                      f"{counts['claimed']} held by readers)", file=sys.stderr)
                return NOTHING_LEFT
            print(json.dumps({"film": film.id, "path": film.info.path, "reader": args.reader, "lease_s": args.lease,
                              "suspicion": film.suspicion(), "error": film.info.error,
                              "results": {m: r.as_dict() for m, r in film.results.items()}}), flush=True)
            return 0
        film_id = film_of(store, args.film)
        if args.action == "release":
            released = store.release(film_id, args.reader)
            print(json.dumps({"film": film_id, "reader": args.reader, "released": released}), flush=True)
            return 0 if released else 1
        row = store.film(film_id)
        made = store.decide(film_id, args.decision, args.note, args.reader,
                            {m: r.as_dict() for m, r in row.results.items()}, args.second_read)
        print(json.dumps({"film": film_id, "path": row.info.path, "decision": made.decision, "reader": made.reader,
                          "second_read": made.second_read, "decided_at": made.decided_at}), flush=True)
    return 0


def film_of(store, text: str) -> int:
    """A film's id from its id or its path; one clear line when the store has no such film."""
    from xrayviewer.core.errors import XRayViewerError
    from xrayviewer.core.review.worklist import film_path

    if text.isdigit():
        try:
            return store.film(int(text)).id
        except KeyError:
            pass
    else:
        known = store.film_by_path(film_path(text))
        if known is not None:
            return known[0]
    raise XRayViewerError(text, "not in the review store", f"{store.name} has no such film",
                          "Take a film from `xrayviewer review next`, or analyse it first: xrayviewer worklist.")
