"""The `xrayviewer` subcommands: each module has `add_parser(subparsers)` and `run(args) -> exit code`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from xrayviewer.core.analysis.cam import DEFAULT_METHOD, METHODS
from xrayviewer.core.analysis.engine import TARGETS
from xrayviewer.core.analysis.overlay import COLORMAPS
from xrayviewer.core.errors import XRayViewerError, user_error
from xrayviewer.core.reading.study import image_paths


def add_model_options(p: argparse.ArgumentParser, cam: bool = False) -> None:
    """--model and --provider, and with `cam` the CAM and overlay options."""
    p.add_argument("--model", default="mobilenetv2",
                   help="shipped model name (mobilenetv2, xception, consensus) or .onnx path")
    p.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "dml"])
    if cam:
        p.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS),
                       help=f"heatmap method (default {DEFAULT_METHOD}: the most faithful within the time budget on "
                       "validation, models/README.md)")
        p.add_argument("--target", default="pneumonia", choices=TARGETS)
        p.add_argument("--colormap", default="jet", choices=sorted(COLORMAPS))
        p.add_argument("--opacity", type=fraction, default=0.4, metavar="F",
                       help="overlay: how much of the heatmap covers the film, from 0 (none) to 1 (default 0.4)")
        p.add_argument("--heat-floor", type=fraction, default=0.2, metavar="F",
                       help="overlay: heatmap values below F (0-1) are left transparent (default 0.2); not the "
                       "decision threshold, which is the model card's (the output's `threshold`)")


def fraction(text: str) -> float:
    """An option's number from 0 to 1 (argparse's type): anything else is refused with the value and the range."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number; give one from 0 to 1") from None
    if not 0 <= value <= 1:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text} is out of range; give a number from 0 to 1")
    return value


def note_skipped(folder: Path, count: int) -> None:
    """Say once on stderr how many files of a folder were left out for not being images."""
    files = "1 file that is not an image" if count == 1 else f"{count} files that are not images"
    print(f"note: {folder}: skipped {files}", file=sys.stderr)


def listed(paths: list[str]) -> Iterator[tuple[Path, XRayViewerError | None]]:
    """Every image of every argument, each with None or why it cannot be used: the scan refused the file, or the
    argument's scan failed part-way (then the argument itself). One bad argument never ends the listing; a
    folder's files that are not images are left out with one note."""
    for raw in paths:
        try:
            for path, problem in image_paths([raw], note_skipped):
                yield path, None if problem is None else XRayViewerError(path, "skipped", problem)
        except Exception as exc:  # noqa: BLE001 - a folder or DICOMDIR that cannot be scanned further
            yield Path(raw), user_error(raw, exc, "could not be scanned")


def exit_status(paths: list[str], failed: int) -> int:
    """As `ls` does: 2 when a PATH given on the command line does not exist, 1 when an image failed, else 0.

    Either way the other paths were done: a typo in one argument never throws away the rest of the run."""
    if any(not os.path.lexists(p) for p in paths):
        return 2
    return 1 if failed else 0


def command_parser(sub: argparse._SubParsersAction, name: str, summary: str, description: str,
                   examples: str) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary (in `xrayviewer --help`), a description and an epilog of examples."""
    return sub.add_parser(name, help=summary, description=description, epilog=f"examples:\n{examples}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
