"""`xrayviewer pacs echo|find|get|nodes`: talk to a PACS node (the configured ones, or AET@HOST:PORT).

`find` prints one JSON line per study; `get` retrieves studies with C-GET into the cache in the user's data
folder, then analyses them into the review store and prints the same JSON lines as `worklist`.
"""

from __future__ import annotations

import argparse
import json
import sys

from xrayviewer.commands import command_parser
from xrayviewer.commands.worklist import add_db_option

NODE_HELP = "a configured node's name (see `xrayviewer pacs nodes`) or AET@HOST:PORT"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "pacs", "echo, search and retrieve from a PACS node; configure nodes",
        "Talk to a PACS node: the nodes configured here (or given as AET@HOST:PORT) are the only machines contacted. "
        "Each association times out: a node that does not answer gives one line naming it.",
        "  xrayviewer pacs nodes add main ORTHANC@10.0.0.5:4242\n  xrayviewer pacs echo main\n"
        "  xrayviewer pacs find main --modality CR,DX --date 20260101-20261231\n"
        "  xrayviewer pacs get main 1.2.840.113619.2.55.3.1234 --model mobilenetv2")
    p.add_argument("--aet", default="XRAYVIEWER", help="this workstation's AE title (default XRAYVIEWER)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    echo = actions.add_parser("echo", help="C-ECHO: exit 0 when the node answers")
    echo.add_argument("node", metavar="NODE", help=NODE_HELP)
    find = actions.add_parser("find", help="search studies; one JSON line per study")
    find.add_argument("node", metavar="NODE", help=NODE_HELP)
    find.add_argument("--patient", default="", help="patient name (DICOM wildcards * and ? allowed)")
    find.add_argument("--id", default="", help="patient ID")
    find.add_argument("--date", default="", help="study date YYYYMMDD or a range D1-D2 (either end open)")
    find.add_argument("--modality", default="", help="modalities in the study, e.g. CR,DX")
    find.add_argument("--accession", default="", help="accession number")
    get = actions.add_parser("get", help="retrieve studies (C-GET) into the cache and analyse them")
    get.add_argument("node", metavar="NODE", help=NODE_HELP)
    get.add_argument("studies", nargs="+", metavar="STUDY_UID")
    add_db_option(get)
    get.add_argument("--model", action="append", metavar="NAME",
                     help="shipped model name or .onnx path; repeat for several (default: mobilenetv2)")
    get.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "dml"])
    get.add_argument("--move-port", type=int, metavar="PORT",
                     help="retrieve with C-MOVE to this AE title, received on PORT while it lasts (the node must know "
                     "this AE title's host and port); default: C-GET, and C-MOVE on 11112 only when the node offers "
                     "no C-GET")
    nodes = actions.add_parser("nodes", help="list, add or remove configured nodes")
    nodes.add_argument("change", nargs="*", metavar="add NAME AET@HOST:PORT | remove NAME")
    p.set_defaults(func=run)


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
        query = pacs.study_query(args.patient, args.id, args.date, args.modality, args.accession)
        for study in pacs.find(node, query, args.aet):
            print(json.dumps(study), flush=True)
        return 0
    return retrieve(args, node)


def retrieve(args: argparse.Namespace, node) -> int:
    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.core.review import pacs
    from xrayviewer.core.review.pacs_nodes import cache_folder
    from xrayviewer.core.review.store import ReviewStore
    from xrayviewer.core.review.worklist import Worklist

    got = pacs.retrieve(node, args.studies, cache_folder(), args.aet, args.move_port)
    for problem in got.problems:
        print(f"note: {node}: {problem}", file=sys.stderr)
    print(f"{node}: {len(got.paths)} films retrieved into {cache_folder()}", file=sys.stderr)
    errors = 0
    with ReviewStore(args.db) as store:
        worklist = Worklist(store, Engine(args.provider), args.model or ["mobilenetv2"])
        for event in worklist.run_items([(path, None) for path in dict.fromkeys(got.paths)]):
            errors += event.status == "error"
            print(json.dumps(event.as_dict()), flush=True)
    return 1 if errors or not got.paths else 0


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
