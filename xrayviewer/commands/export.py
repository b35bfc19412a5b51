"""`xrayviewer export FILM [--db FILE] --out DIR [--send NODE]`: the film's DICOM SR, Parametric Map and SC from the
review store.

The AI result (recomputed with the stored model; its heatmap as a Parametric Map and on the SC), gate reasons, the
reader's decision and note and the marks, written into DIR and, with --send, stored on a PACS node (C-STORE) under
the film's study. The objects' UIDs are made from what they depend on: exporting an unchanged film again rewrites
the same objects, and a PACS stores nothing new.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xrayviewer.commands import command_parser
from xrayviewer.commands.worklist import add_db_option


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "export", "write a film's DICOM SR, Parametric Map and Secondary Capture from the review store; send them",
        "Export what the review store holds for FILM (run `xrayviewer worklist` on it first): a TID 1500 SR with "
        "the AI result (its evidence region on the film, probability and threshold), gate reasons, the reader's "
        "decision, note and marks; the heatmap as a Parametric Map on the film's pixels; and a Secondary Capture "
        "of the film with its heatmap and result. A picture file (PNG, JPEG) gets the patient and accession given "
        "here (a warning when none is given) and one study of its own, and no Parametric Map. Re-exporting an "
        "unchanged result gives the same UIDs. Prints one JSON line with the files.",
        "  xrayviewer export chest.dcm --out exports/\n  xrayviewer export chest.dcm --out exports/ --send main")
    p.add_argument("film", metavar="FILM", type=Path)
    add_db_option(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--send", metavar="NODE", help="C-STORE the files to this PACS node (name or AET@HOST:PORT)")
    p.add_argument("--aet", default="XRAYVIEWER", help="this workstation's AE title when sending")
    p.add_argument("--patient-name", default="", help="a picture file's patient name (FAMILY^GIVEN)")
    p.add_argument("--patient-id", default="", help="a picture file's patient ID")
    p.add_argument("--accession", default="", help="a picture file's accession number")
    p.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "dml"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.core.errors import XRayViewerError
    from xrayviewer.core.reading.display import to_display
    from xrayviewer.core.reading.reader import read_image
    from xrayviewer.core.review.dicom_export import Identity, export_dicom, film_picture, identified
    from xrayviewer.core.review.report_image import Reading
    from xrayviewer.core.review.store import ReviewStore
    from xrayviewer.core.review.worklist import film_path

    node = None
    if args.send:
        from xrayviewer.core.review.pacs_nodes import resolve_node

        node = resolve_node(args.send)  # a wrong node is said before any work
    path = film_path(args.film)
    with ReviewStore(args.db) as store:
        known = store.film_by_path(path)
        if known is None:
            raise XRayViewerError(path, "not in the review store", f"{store.name} has no such film",
                                  f"Analyse it first: xrayviewer worklist {args.film}")
        row = store.film(known[0])
        marks = tuple(store.marks(row.id))
        decided = [d for d in store.history(row.id) if d.withdrawn_at is None]
    previous = decided[-2] if len(decided) > 1 else None  # the decision the SR's predecessor carries
    record = read_image(path)
    analysis, digest = None, ""
    if row.results:
        stored = next(iter(row.results.values()))
        engine = Engine(args.provider)
        model = engine.model(stored.model)
        analysis = engine.analyze(model, to_display(record), record=record, force=stored.out_of_scope)
        digest = model.digest  # the file that made this result (the stored one may be older)
    reading = Reading(record, analysis, row.decision, marks, digest)
    if record.format == "dicom":
        if args.patient_name or args.patient_id or args.accession:
            print(f"note: {path}: a DICOM film keeps its own patient and accession; the options are ignored",
                  file=sys.stderr)
    else:
        if not (args.patient_name or args.patient_id):
            print(f"warning: {path}: a picture file carries no patient: its DICOM objects name none (give "
                  "--patient-name and --patient-id)", file=sys.stderr)
        reading = identified(reading, Identity(args.patient_name, args.patient_id, args.accession))
    reading, picture = film_picture(reading)
    out = export_dicom(reading, picture, args.out, previous)
    files = [p for p in (out.sr, out.pm, out.sc) if p is not None]
    line = {"film": str(path), "sc": str(out.sc), "sr": str(out.sr), "pm": out.pm and str(out.pm), "sent_to": None}
    if node is not None:
        from xrayviewer.core.review.pacs import send

        send(node, files, args.aet)
        line["sent_to"] = node.address
        print(f"{node}: stored {', '.join(p.name for p in files)}", file=sys.stderr)
    print(json.dumps(line), flush=True)
    return 0
