"""`xrayviewer analyze PATH...`: the gate's verdict, probability, label and a CAM overlay per image, as JSON lines.

An image the gate refuses gets `"label": null`, `"probability": null`, its reasons in `refused` and no
overlay, unless `--force`: then the result is printed with `"out_of_scope": true`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xrayviewer.commands import add_model_options, command_parser
from xrayviewer.core import XRayViewerError, read_image, to_display
from xrayviewer.core.engine import Engine
from xrayviewer.core.overlay import OverlayStyle, composite, save_png
from xrayviewer.core.study import image_paths

BATCH = 32


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "analyze", "run the model on images, folders or DICOM studies; one JSON line each",
        "Run a model on each image behind the gate and print one JSON object per image: path, frame, model, "
        "provider, method, target, probability, label, threshold (the decision threshold of the model card), "
        "refused (the gate's reasons), notes, out_of_scope, ood_score, overlay, error. An image the gate refuses "
        "gets no label, probability or overlay unless --force. Exit 1 if any image failed.",
        "  xrayviewer analyze chest.dcm\n"
        "  xrayviewer analyze studies/ --model xception --method gradcampp --out overlays/ --heat-floor 0.3\n"
        "  xrayviewer analyze films/ | jq -r 'select(.label == \"PNEUMONIA\") | .path'")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_model_options(p, cam=True)
    p.add_argument("--out", type=Path, help="folder for overlay PNGs")
    p.add_argument("--force", action="store_true",
                   help="show the result of images the gate refuses too, marked out_of_scope")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engine = Engine(args.provider)
    model = engine.model(args.model)
    style = OverlayStyle(args.colormap, args.opacity, args.heat_floor)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    base = {"model": model.card.name, "provider": model.provider, "method": args.method, "target": args.target}
    used_names: set[str] = set()
    failed = 0

    def report(path: Path, **fields) -> None:
        row = {"path": str(path), "frame": 0, **base, "probability": None, "label": None,
               "threshold": model.card.threshold, "refused": [], "notes": [], "out_of_scope": False,
               "ood_score": None, "overlay": None, "error": None, **fields}
        print(json.dumps(row), flush=True)

    pending: list[tuple[Path, object]] = []

    def flush() -> None:
        if not pending:
            return
        displays = [to_display(record) for _, record in pending]
        for (path, record), display, inference in zip(pending, displays, engine.infer(model, displays)):
            result = engine.analysis(model, inference, display, args.method, args.target, record, args.force)
            overlay = None
            if args.out and result.cam is not None:
                overlay = args.out / _unique_name(path, args.method, used_names)
                save_png(overlay, composite(display, result.cam.heat, style))
            report(path, frame=record.frame, label=result.label,
                   probability=None if result.probability is None else round(result.probability, 6),
                   refused=[str(r) for r in result.refused], notes=[str(n) for n in result.notes],
                   out_of_scope=result.out_of_scope, ood_score=result.ood_score,
                   overlay=str(overlay) if overlay else None)
        pending.clear()

    for path, problem in image_paths(args.paths):
        try:
            if problem:
                raise XRayViewerError(path, "skipped", problem)
            pending.append((path, read_image(path)))
        except XRayViewerError as exc:
            failed += 1
            flush()  # keep the output in input order
            report(path, error=str(exc))
            print(f"error: {exc}", file=sys.stderr)
        if len(pending) >= BATCH:
            flush()
    flush()
    return 1 if failed else 0


def _unique_name(path: Path, method: str, used: set[str]) -> str:
    stem, n = f"{path.stem}.{method}", 1
    name = f"{stem}.png"
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name
