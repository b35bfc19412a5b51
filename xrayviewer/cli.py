"""The `xrayviewer` command line."""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from pathlib import Path

from xrayviewer import __version__
from xrayviewer.core.review.store_sql import is_server
from xrayviewer.offline import keep_http_clients_out

# modules of xrayviewer.commands, imported when used
COMMANDS = ("info", "analyze", "evaluate", "bench", "worklist", "report", "pacs", "listen", "export", "review",
            "store")
SIGPIPE_EXIT = 141  # what a shell reports for a program that the closed end of a pipe stopped (128 + SIGPIPE)
SIGINT_EXIT = 130  # what a shell reports for a program that Ctrl-C stopped (128 + SIGINT)
VIEWER_EPILOG = """examples:
  xrayviewer --demo                      open the demo chest study
  xrayviewer chest.dcm studies/DICOMDIR  open files, folders or DICOMDIRs
  xrayviewer --review today/             review a folder as a worklist (decisions in the review store)
  xrayviewer --review --db postgresql://reader@dbhost/xray
                                         read the department's shared worklist (every film in it)
  xrayviewer analyze chest.dcm --out overlays/
  xrayviewer COMMAND --help              what each command does"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xrayviewer", description="Offline chest X-ray viewer with an AI "
                                     "second opinion (research use, not a diagnosis).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    for name in COMMANDS:
        importlib.import_module(f"xrayviewer.commands.{name}").add_parser(sub)
    return parser


def viewer_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xrayviewer", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=VIEWER_EPILOG,
        description="Offline chest X-ray viewer with an AI second opinion (research use, not a diagnosis). "
        f"Commands: {', '.join(COMMANDS)} (see `xrayviewer COMMAND --help`).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files, folders or DICOMDIRs to open")
    parser.add_argument("--demo", action="store_true", help="open the demo chest study")
    parser.add_argument("--compare", action="store_true", help="start in the side-by-side layout")
    parser.add_argument("--review", action="store_true",
                        help="open the PATHs (folders of films) as a worklist in review mode: most suspicious first, "
                        "keys 1-4 decide, U next unread, Ctrl+Z undo; on a shared store (a postgresql:// URL) "
                        "without PATHs, every film in it")
    parser.add_argument("--db", type=db_location, metavar="FILE|URL",
                        help="the review store: a SQLite file, or a department's shared worklist as "
                        "postgresql://USER@HOST[:PORT]/DB (password from PGPASSFILE, a service file or the URL; never "
                        "printed) (default: $XRAYVIEWER_DB, else review.sqlite in the user's data folder, e.g. "
                        "~/.local/share/xrayviewer/ or %%LOCALAPPDATA%%\\XRayViewer\\)")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda", "dml"],
                        help="where the models run (default: the one last chosen in the viewer, else auto)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="render the window offscreen once the analysis is shown, save it and exit")
    parser.add_argument("--self-test", action="store_true",
                        help="analyse the demo film with the shipped models, print one JSON line, exit")
    parser.add_argument("--startup-probe", action="store_true", help=argparse.SUPPRESS)  # `bench`: cold start
    return parser


def db_location(text: str) -> str | Path:
    """--db: a file or a postgresql:// URL (another URL is a usage error saying so)."""
    from xrayviewer.commands.worklist import db_location as parse

    return parse(text)


def db_location_or_exit(parser: argparse.ArgumentParser, text: str) -> str | Path:
    """$XRAYVIEWER_DB as --db takes it; exit 2 with one line for another URL."""
    try:
        return db_location(text)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"$XRAYVIEWER_DB: {exc}")


def check_paths(parser: argparse.ArgumentParser, paths: list[str]) -> None:
    """Exit 2 (argparse's usage error) for a path that does not exist, suggesting a command for a misspelt one."""
    for path in paths:
        if Path(path).exists():
            continue
        close = difflib.get_close_matches(path, COMMANDS, n=1, cutoff=0.6)
        if close:
            parser.error(f"'{path}' is neither a command nor a file: did you mean {close[0]}?")
        parser.error(f"no such file or folder: {path}")


def main(argv: list[str] | None = None) -> int:
    keep_http_clients_out()
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader went away (`xrayviewer info DIR | head`): stop quietly; the flush at exit must not fail either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_EXIT
    except KeyboardInterrupt:  # Ctrl-C: what was printed stands (each row is whole); no traceback
        print("xrayviewer: interrupted", file=sys.stderr)
        return SIGINT_EXIT


def _main(argv: list[str]) -> int:
    if argv and argv[0] in COMMANDS:
        from xrayviewer.core.errors import XRayViewerError

        args = build_parser().parse_args(argv)
        try:
            return args.func(args)
        except XRayViewerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    parser = viewer_parser()
    args = parser.parse_args(argv)
    check_paths(parser, args.paths)
    if args.db is None and os.environ.get("XRAYVIEWER_DB"):
        args.db = db_location_or_exit(parser, os.environ["XRAYVIEWER_DB"])
    if args.review and not args.paths and not is_server(args.db):
        parser.error("--review needs a folder (or files) to review, or a shared store: --db postgresql://...")
    if args.self_test:
        from xrayviewer.selftest import main as self_test

        return self_test(args.provider or "auto")
    if args.screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from xrayviewer.qt_platform import EXIT_CODE, platform_problem

    problem = platform_problem()
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_CODE
    from xrayviewer.gui.app import run

    return run(args.paths, args.demo, args.screenshot, args.provider, args.compare, args.startup_probe,
               review=args.review, db=args.db)
