"""The `xrayviewer` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from xrayviewer import __version__
from xrayviewer.commands import analyze, bench, evaluate, info, report, worklist
from xrayviewer.core import XRayViewerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xrayviewer", description="Offline chest X-ray viewer with an AI "
                                     "second opinion (research use, not a diagnosis).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    for command in (info, analyze, evaluate, bench, worklist, report):
        command.add_parser(sub)
    return parser


def viewer_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xrayviewer", description="Offline chest X-ray viewer with an AI second opinion (research use, not a "
        "diagnosis). Commands: info, analyze, evaluate, bench, worklist, report (see `xrayviewer COMMAND --help`).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files, folders or DICOMDIRs to open")
    parser.add_argument("--demo", action="store_true", help="open the demo chest study")
    parser.add_argument("--compare", action="store_true", help="start in the side-by-side layout")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda", "dml"],
                        help="where the models run (default: the one last chosen in the viewer, else auto)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="render the window offscreen once the analysis is shown, save it and exit")
    parser.add_argument("--self-test", action="store_true",
                        help="analyse the demo film with the shipped models, print one JSON line, exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"info", "analyze", "evaluate", "bench", "worklist", "report"}
    if argv and argv[0] in commands:
        args = build_parser().parse_args(argv)
        try:
            return args.func(args)
        except XRayViewerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    args = viewer_parser().parse_args(argv)
    if args.self_test:
        from xrayviewer.selftest import main as self_test

        return self_test(args.provider or "auto")
    if args.screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from xrayviewer.gui.app import run

    return run(args.paths, args.demo, args.screenshot, args.provider, args.compare)
