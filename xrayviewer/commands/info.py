"""`xrayviewer info PATH...`: one JSON object per image on stdout; an unreadable file gets one `{"path", "frame",
"error"}` object instead (and its message on stderr), and the rest go on."""

from __future__ import annotations

import argparse
import json
import sys

from xrayviewer.commands import command_parser, exit_status, listed
from xrayviewer.core import ImageRecord, read_image
from xrayviewer.core.errors import user_error


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
        "notes": list(record.notes),  # header values the reader could not use, and what it did instead
    }


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "info", "print one JSON object per image: format, size, window, patient/study",
        "Read each image (files, folders, DICOMDIRs) and print one JSON object per image: format, size, bits, "
        "photometric interpretation, transfer syntax, default window, patient and study fields, notes (header "
        "values the reader worked around). A file that cannot be read gives one line on stderr and exit code 1 "
        "(2 when a PATH does not exist); the others go on.",
        "  xrayviewer info chest.dcm\n  xrayviewer info --demo\n  xrayviewer info studies/ | head -3")
    p.add_argument("paths", nargs="*", metavar="PATH", help="image, DICOM file, folder or DICOMDIR")
    p.add_argument("--frame", type=int, default=0, help="frame of multi-frame files (default 0)")
    p.add_argument("--demo", action="store_true", help="also the demo chest CR (pydicom-data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = list(args.paths)
    if args.demo:
        from xrayviewer.demo import demo_path

        paths.append(str(demo_path()))
    if not paths:
        print("xrayviewer info: give at least one PATH, or --demo", file=sys.stderr)
        return 2
    failed = 0
    for path, problem in listed(paths):
        try:
            if problem:
                raise problem
            print(json.dumps(info_of(read_image(path, args.frame))), flush=True)
        except Exception as exc:  # noqa: BLE001 - one bad file is one error line, the rest go on
            error = user_error(path, exc, "could not be read")
            print(json.dumps({"path": str(path), "frame": args.frame, "error": str(error)}), flush=True)
            print(f"error: {error}", file=sys.stderr)
            failed += 1
    return exit_status(paths, failed)
