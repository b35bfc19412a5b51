"""`xrayviewer pacs echo|find|get|nodes`: talk to a PACS node (the configured ones, or AET@HOST:PORT).

`find` prints one JSON line per study as each arrives; `get` retrieves studies with C-GET into the cache in the
user's data folder, then analyses them into the review store and prints the same JSON lines as `worklist`; films
that came before a failure are analysed and listed too, and a summary says how many of how many came. Notes and
progress go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable

from xrayviewer.commands import command_parser
from xrayviewer.commands.worklist import add_db_option

NODE_HELP = "a configured node's name (see `xrayviewer pacs nodes`) or AET@HOST:PORT"
PROGRESS_S = 10.0  # a long retrieve says where it is at least this often


def add_parser(sub: argparse._SubParsersAction) -> None:
    from xrayviewer.core.review.pacs import LIMIT_BYTES, RETRIEVE_S, SEARCH_S

    p = command_parser(
        sub, "pacs", "echo, search and retrieve from a PACS node; configure nodes",
        "Talk to a PACS node: the nodes configured here (or given as AET@HOST:PORT) are the only machines contacted. "
        "Each association times out, and a search or retrieve has an overall --timeout: a node that does not "
        "answer gives one line naming it and the limit that was hit.",
        "  xrayviewer pacs nodes add main ORTHANC@10.0.0.5:4242\n  xrayviewer pacs echo main\n"
        "  xrayviewer pacs find main --modality CR,DX --date 20260101-20261231\n"
        "  xrayviewer pacs get main 1.2.840.113619.2.55.3.1234 --model mobilenetv2")
    p.add_argument("--aet", default="XRAYVIEWER", help="this workstation's AE title (default XRAYVIEWER)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    echo = command_parser(
        actions, "echo", "C-ECHO: exit 0 when the node answers",
        "Check that a node answers (DICOM C-ECHO) as this AE title: exit 0 when it does, else one line saying why "
        "(refused association, nothing within the connect or associate time-outs) and exit 1.",
        "  xrayviewer pacs echo main\n  xrayviewer pacs --aet CXRVIEW echo ORTHANC@10.0.0.5:4242")
    echo.add_argument("node", metavar="NODE", help=NODE_HELP)
    find = command_parser(
        actions, "find", "search studies; one JSON line per study",
        "Search a node's studies (C-FIND, study level) and print one JSON line per study as it arrives "
        "(StudyInstanceUID, patient, patient_id, date, time, modalities, description, accession, images), then "
        "the number of studies on stderr. A value the node sends that is not what its DICOM type allows is left "
        "empty with a note on stderr. A search that fails or passes --timeout keeps what it printed and exits 1.",
        "  xrayviewer pacs find main --modality CR,DX --date 20260101-20261231\n"
        "  xrayviewer pacs find main --patient 'DOE^J*'\n  xrayviewer pacs find main --id 12345 --timeout 30")
    find.add_argument("node", metavar="NODE", help=NODE_HELP)
    find.add_argument("--patient", default="", help="patient name (DICOM wildcards * and ? allowed)")
    find.add_argument("--id", default="", help="patient ID")
    find.add_argument("--date", default="", help="study date YYYYMMDD or a range D1-D2 (either end open)")
    find.add_argument("--modality", default="", help="modalities in the study, e.g. CR,DX")
    find.add_argument("--accession", default="", help="accession number")
    find.add_argument("--timeout", type=seconds, default=SEARCH_S, metavar="SECONDS",
                      help=f"the longest the whole search may take (default {SEARCH_S:g} s)")
    get = command_parser(
        actions, "get", "retrieve studies (C-GET) into the cache and analyse them",
        "Retrieve the image series of studies (C-GET; C-MOVE with --move-port) into the cache in the user's data "
        "folder, analyse each film into the review store and print the `worklist` JSON lines. Every film must "
        "belong to the study asked for and its patient, or it is refused and not kept (exit 1). A retrieve that "
        "fails or passes --timeout keeps the films that came: they are analysed and listed, and a summary says how "
        "many of how many came (exit 1). Progress goes to stderr.",
        "  xrayviewer pacs get main 1.2.840.113619.2.55.3.1234\n"
        "  xrayviewer pacs get main 1.2.3.4 1.2.3.5 --model mobilenetv2 --model xception --db study.db\n"
        "  xrayviewer pacs get main 1.2.3.4 --move-port 11112 --timeout 3600")
    get.add_argument("node", metavar="NODE", help=NODE_HELP)
    get.add_argument("studies", nargs="+", metavar="STUDY_UID")
    add_db_option(get)
    get.add_argument("--model", action="append", metavar="NAME",
                     help="shipped model name or .onnx path; repeat for several (default: mobilenetv2)")
    get.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "dml"])
    get.add_argument("--timeout", type=seconds, default=RETRIEVE_S, metavar="SECONDS",
                     help=f"the longest the whole retrieve may take (default {RETRIEVE_S:g} s)")
    get.add_argument("--max-mb", type=float, default=LIMIT_BYTES / 2**20,
                     help="the largest film taken: a larger one is abandoned as it passes the limit, which ends the "
                     f"retrieve (default {LIMIT_BYTES / 2**20:g} MB, as the listener's)")
    get.add_argument("--move-port", type=int, metavar="PORT",
                     help="retrieve with C-MOVE to this AE title, received on PORT while it lasts (the node must know "
                     "this AE title's host and port); default: C-GET, and C-MOVE on 11112 only when the node offers "
                     "no C-GET")
    get.add_argument("--move-bind", metavar="ADDRESS",
                     help="the interface a C-MOVE is received on (default: the one that reaches the node)")
    nodes = command_parser(
        actions, "nodes", "list, add or remove configured nodes",
        "List the configured PACS nodes (one JSON line each; the file they are kept in on stderr), or add or remove "
        "one. These nodes are the only machines the app contacts (besides an AET@HOST:PORT given on the command "
        "line), and the callers `xrayviewer listen` serves by default.",
        "  xrayviewer pacs nodes\n  xrayviewer pacs nodes add main ORTHANC@10.0.0.5:4242\n"
        "  xrayviewer pacs nodes remove main")
    nodes.add_argument("change", nargs="*", metavar="add NAME AET@HOST:PORT | remove NAME")
    p.set_defaults(func=run)


def seconds(text: str) -> float:
    """A --timeout: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 1e7:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds above 0")
    return value


def run(args: argparse.Namespace) -> int:
    from xrayviewer.core.review import pacs
    from xrayviewer.core.review.pacs_nodes import resolve_node

    if args.action == "nodes":
        return nodes(args.change)
    node = resolve_node(args.node)
    if args.action == "echo":
        pacs.echo(node, args.aet)
        print(f"{node}: answers C-ECHO", file=sys.stderr)
        return 0
    if args.action == "find":
        return find(args, node)
    return retrieve(args, node)


def note(node) -> Callable[[str], None]:
    """Print a note about `node` on stderr."""
    return lambda text: print(f"note: {node}: {text}", file=sys.stderr, flush=True)


def find(args: argparse.Namespace, node) -> int:
    from xrayviewer.core.review import pacs

    query = pacs.study_query(args.patient, args.id, args.date, args.modality, args.accession)
    count = 0
    try:
        for study in pacs.search(node, query, args.aet, args.timeout, note(node)):
            print(json.dumps(study), flush=True)
            count += 1
    except pacs.PacsError as exc:
        print(f"{node}: {studies(count)} found before {exc.cause}", file=sys.stderr)
        raise
    print(f"{node}: {studies(count)}", file=sys.stderr)
    return 0


def studies(count: int) -> str:
    return f"{count} stud{'y' if count == 1 else 'ies'}"


class Progress:
    """Where a retrieve is, on stderr: after a film when the last line is a few seconds old, and every PROGRESS_S
    while nothing comes."""

    def __init__(self, node, limit: float) -> None:
        self.node, self.limit = node, limit
        self.start = self.said = time.monotonic()
        self.kept, self.expected = 0, None
        self._done = threading.Event()
        threading.Thread(target=self._tick, daemon=True).start()

    def __call__(self, kept: int, expected: int | None) -> None:
        self.kept, self.expected = kept, expected
        if time.monotonic() - self.said >= 2:
            self.say()

    def say(self) -> None:
        self.said = time.monotonic()
        of = f" of {self.expected}" if self.expected is not None else ""
        print(f"{self.node}: {self.kept}{of} films received, {self.said - self.start:.0f} s of the "
              f"{self.limit:g} s limit", file=sys.stderr, flush=True)

    def _tick(self) -> None:
        while not self._done.wait(1.0):
            if time.monotonic() - self.said >= PROGRESS_S:
                self.say()

    def stop(self) -> None:
        self._done.set()


def retrieve(args: argparse.Namespace, node) -> int:
    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.core.errors import XRayViewerError
    from xrayviewer.core.review import pacs
    from xrayviewer.core.review.pacs_nodes import cache_folder
    from xrayviewer.core.review.store import ReviewStore
    from xrayviewer.core.review.worklist import Worklist

    if args.max_mb <= 0:
        raise XRayViewerError(None, "invalid limit", "--max-mb must be above 0")
    progress = Progress(node, args.timeout)
    try:
        got = pacs.retrieve(node, args.studies, cache_folder(), args.aet, args.move_port, args.timeout, progress,
                            args.move_bind, int(args.max_mb * 2**20))
    finally:
        progress.stop()
    for problem in got.problems:
        note(node)(problem)
    print(f"{node}: {got.summary()} into {cache_folder()}", file=sys.stderr)
    if got.failure is not None:
        print(f"error: {got.failure}", file=sys.stderr)
    errors = 0
    with ReviewStore(args.db) as store:
        worklist = Worklist(store, Engine(args.provider), args.model or ["mobilenetv2"])
        for event in worklist.run_items([(path, None) for path in dict.fromkeys(got.paths)]):
            errors += event.status == "error"
            print(json.dumps(event.as_dict()), flush=True)
    return 1 if errors or not got.paths or got.failure is not None or got.refused else 0


def nodes(change: list[str]) -> int:
    from xrayviewer.core.review.pacs_nodes import add_node, load_nodes, nodes_path, remove_node

    if change[:1] == ["add"] and len(change) == 3:
        print(f"added {add_node(change[1], change[2])}", file=sys.stderr)
    elif change[:1] == ["remove"] and len(change) == 2:
        remove_node(change[1])
        print(f"removed {change[1]}", file=sys.stderr)
    elif change:
        print("usage: xrayviewer pacs nodes [add NAME AET@HOST:PORT | remove NAME]", file=sys.stderr)
        return 2
    for node in load_nodes().values():
        print(json.dumps({"name": node.name, "aet": node.aet, "host": node.host, "port": node.port}))
    print(f"{nodes_path()}", file=sys.stderr)
    return 0
