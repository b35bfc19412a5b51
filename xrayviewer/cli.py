"""The `xrayviewer` command line."""

from __future__ import annotations

import argparse
import sys

from xrayviewer import __version__
from xrayviewer.commands import analyze, bench, evaluate, info
from xrayviewer.core import XRayViewerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xrayviewer", description="Offline chest X-ray viewer with an AI "
                                     "second opinion (research use, not a diagnosis).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    for command in (info, analyze, evaluate, bench):
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except XRayViewerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
