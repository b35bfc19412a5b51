"""The `xrayviewer` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from xrayviewer import __version__
from xrayviewer.core import ImageRecord, XRayViewerError, read_image, scan


def expand(paths: list[str]) -> Iterator[tuple[Path, str | None]]:
    """Files as given; folders and DICOMDIRs as their images. Yields (path, problem or None)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir() or path.name.upper() == "DICOMDIR":
            tree = scan(path)
            for instance in tree.instances():
                yield instance.path, None
            for problem in tree.problems:
                yield problem.path, problem.reason
        else:
            yield path, None


def info_of(record: ImageRecord) -> dict:
    """The JSON object `xrayviewer info` prints for one image."""
    m = record.metadata
    return {
        "path": record.path,
        "frame": record.frame,
        "frames": record.frames,
        "format": record.format,
        "modality": m.modality,
        "rows": record.rows,
        "columns": record.columns,
        "bits_stored": record.bits_stored,
        "photometric_interpretation": record.photometric,
        "transfer_syntax": record.transfer_syntax,
        "default_window": {"center": round(record.window.center, 3), "width": round(record.window.width, 3)},
        "patient_name": m.patient_name,
        "patient_id": m.patient_id,
        "study_date": m.study_date,
        "study_description": m.study_description,
        "series_description": m.series_description,
        "body_part": m.body_part,
        "view_position": m.view_position,
        "pixel_spacing": list(m.pixel_spacing) if m.pixel_spacing else None,
    }


def cmd_info(args: argparse.Namespace) -> int:
    paths = list(args.paths)
    if args.demo:
        from xrayviewer.demo import demo_path

        paths.append(str(demo_path()))
    if not paths:
        print("xrayviewer info: give at least one PATH, or --demo", file=sys.stderr)
        return 2
    failed = 0
    for path, problem in expand(paths):
        if problem:
            print(f"error: {path}: {problem}", file=sys.stderr)
            failed += 1
            continue
        try:
            record = read_image(path, args.frame)
        except XRayViewerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(json.dumps(info_of(record)), flush=True)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xrayviewer", description="Offline chest X-ray viewer with an AI "
                                     "second opinion (research use, not a diagnosis).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    info = sub.add_parser("info", help="print one JSON object per image: format, size, window, patient/study")
    info.add_argument("paths", nargs="*", metavar="PATH", help="image, DICOM file, folder or DICOMDIR")
    info.add_argument("--frame", type=int, default=0, help="frame of multi-frame files (default 0)")
    info.add_argument("--demo", action="store_true", help="also the demo chest CR (pydicom-data)")
    info.set_defaults(func=cmd_info)
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
