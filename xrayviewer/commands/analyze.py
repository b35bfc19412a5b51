"""`xrayviewer analyze PATH...`: the gate's verdict, probability and label per image (and with --out its CAM overlay),
as JSON lines.

An image the gate refuses gets `"label": null`, `"probability": null`, its reasons in `refused` and no
overlay, unless `--force`: then the result is printed with `"out_of_scope": true`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from xrayviewer.commands import add_model_options, command_parser, exit_status, listed
from xrayviewer.core import ImageRecord, XRayViewerError, read_image, to_display
from xrayviewer.core.analysis.cam import METHODS
from xrayviewer.core.analysis.engine import Engine, Inference
from xrayviewer.core.analysis.overlay import OverlayStyle, cam_overlay, save_png
from xrayviewer.core.errors import OutputError, user_error

BATCH = 32
OVERLAY_NAME = re.compile(rf"\.({'|'.join(METHODS)})(-\d+)?\.png$", re.IGNORECASE)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "analyze", "run the model on images, folders or DICOM studies; one JSON line each",
        "Run a model on each image behind the gate and print one JSON object per image: path, frame, model, "
        "provider, method, target, probability, label, threshold (the decision threshold of the model card), "
        "refused (the gate's reasons), notes, out_of_scope, ood_score, overlay, error. A heatmap is computed only "
        "to be drawn: without --out none is made and method is null. An image the gate refuses gets no label, "
        "probability or overlay unless --force. Exit 2 if a PATH does not exist, 1 if any image failed; the other "
        "images are done either way.",
        "  xrayviewer analyze chest.dcm\n"
        "  xrayviewer analyze studies/ --model xception --method gradcampp --out overlays/ --heat-floor 0.3\n"
        "  xrayviewer analyze films/ | jq -r 'select(.label == \"PNEUMONIA\") | .path'")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_model_options(p, cam=True)
    p.add_argument("--out", type=Path, help="folder for overlay PNGs (the heatmap of --method is computed only then)")
    p.add_argument("--out-inside", action="store_true",
                   help="allow --out inside a folder being analysed (its overlays are then skipped on re-runs)")
    p.add_argument("--force", action="store_true",
                   help="show the result of images the gate refuses too, marked out_of_scope")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engine = Engine(args.provider)
    model = engine.model(args.model)
    style = OverlayStyle(args.colormap, args.opacity, args.heat_floor)
    out = Overlays(args.out, args.method, args.paths, args.out_inside) if args.out else None
    if out and out.refusal:
        print(f"xrayviewer analyze: {out.refusal}", file=sys.stderr)
        return 2
    method = args.method if out else None  # the heatmap is made only to be drawn: none without --out
    base = {"model": model.card.name, "provider": model.provider, "method": method, "target": args.target}
    failed = 0

    def report(path: Path, error: Exception | None = None, **fields) -> None:
        nonlocal failed
        row = {"path": str(path), "frame": 0, **base, "probability": None, "label": None,
               "threshold": model.card.threshold, "refused": [], "notes": [], "out_of_scope": False,
               "ood_score": None, "overlay": None, "error": None, **fields}
        if error is not None:
            failed += 1
            row["error"] = str(error)
            print(f"error: {error}", file=sys.stderr)
        print(json.dumps(row), flush=True)

    def analyse(path: Path, record: ImageRecord, display: np.ndarray, inference: Inference | None) -> None:
        """One image's row: its result, and its overlay unless that cannot be written (the row says why)."""
        try:
            if inference is None:
                (inference,) = engine.infer(model, [display])
            result = engine.analysis(model, inference, display, method, args.target, record, args.force)
            overlay = None if out is None or result.cam is None else cam_overlay(display, result.cam, style)
        except Exception as exc:  # noqa: BLE001 - one image's failure is its own error line
            report(path, user_error(path, exc, "could not be analysed"))
            return
        fields = {"frame": record.frame, "label": result.label,
                  "probability": None if result.probability is None else round(result.probability, 6),
                  "refused": [str(r) for r in result.refused], "notes": [str(n) for n in result.notes],
                  "out_of_scope": result.out_of_scope, "ood_score": result.ood_score}
        try:
            fields["overlay"] = None if overlay is None else str(out.save(path, overlay))
        except XRayViewerError as exc:
            report(path, exc, **fields)
            return
        report(path, **fields)

    pending: list[tuple[Path, ImageRecord, np.ndarray]] = []

    def flush() -> None:
        """Analyse the pending images in one batch; when the batch fails, each image on its own."""
        try:
            inferences = engine.infer(model, [display for _, _, display in pending]) if pending else []
        except Exception:  # noqa: BLE001 - which image broke it is found out one by one below
            inferences = [None] * len(pending)
        for (path, record, display), inference in zip(pending, inferences):
            analyse(path, record, display, inference)
        pending.clear()

    for path, problem in _inputs(args.paths):
        try:
            if problem:
                raise problem
            record = read_image(path)
            pending.append((path, record, to_display(record)))
        except Exception as exc:  # noqa: BLE001 - one unreadable file is one error line
            flush()  # keep the output in input order
            report(path, user_error(path, exc, "could not be read"))
        if len(pending) >= BATCH:
            flush()
    flush()
    return exit_status(args.paths, failed)


def _inputs(paths: list[str]) -> Iterator[tuple[Path, XRayViewerError | None]]:
    """`listed(paths)` without the overlays this command wrote on an earlier run (left out with a note)."""
    for path, problem in listed(paths):
        if problem is None and is_overlay(path):
            print(f"note: {path}: skipped, an overlay written by `xrayviewer analyze` (rename it to analyse it)",
                  file=sys.stderr)
        else:
            yield path, problem


def is_overlay(path: Path) -> bool:
    """Whether `path` is named as this command names its overlay PNGs (`NAME.METHOD.png`, `NAME.METHOD-2.png`)."""
    return OVERLAY_NAME.search(path.name) is not None


class Overlays:
    """Where the overlay PNGs go: a folder made at the start (and again when it was missing), names that never repeat
    in one run, never an input, and not inside a folder being analysed unless the user allows it."""

    def __init__(self, folder: Path, method: str, inputs: list[str], allow_inside: bool) -> None:
        self.folder, self.method = folder, method
        self.used: set[str] = set()
        self.refusal = ""
        target = folder.resolve()
        given = [Path(p) for p in inputs]
        analysed = [p if _is(p, Path.is_dir) else p.parent for p in given
                    if _is(p, Path.is_dir) or p.name.upper() == "DICOMDIR"]  # a DICOMDIR stands for its folder
        inside = [p for p in analysed if target.is_relative_to(p.resolve())]
        if inside and not allow_inside:
            self.refusal = (f"{folder}: the overlay folder is inside the folder being analysed ({inside[0]}), "
                            "where overlays would mix with the films. Choose a folder outside it, or add "
                            "--out-inside to write there anyway.")
        # never overwrite a file the user named, nor (inside an analysed folder) a film there; an earlier run's
        # overlays, which are never analysed, are written over
        existing = [p for p in _files(target) if not is_overlay(p)] if inside else []
        self.taken = {p.resolve() for p in [*given, *existing] if _is(p, Path.is_file)}
        self.problem = None if self.refusal else self._make()  # said once per image that needed it, in its row

    def _make(self) -> OutputError | None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return OutputError(self.folder, "cannot make the overlay folder", exc.strerror or str(exc),
                               "Give --out a folder you can write to; the results are still printed.")
        return None

    def save(self, source: Path, rgb: np.ndarray) -> Path:
        """Write `source`'s overlay; returns its path."""
        if self.problem:
            self.problem = self._make()  # it may have been fixed meanwhile
            if self.problem:
                raise self.problem
        stem, n = f"{source.stem}.{self.method}", 1
        name = f"{stem}.png"
        while name in self.used or (self.folder / name).resolve() in self.taken:
            n += 1
            name = f"{stem}-{n}.png"
        self.used.add(name)
        save_png(self.folder / name, rgb)
        return self.folder / name


def _is(path: Path, test: Callable[[Path], bool]) -> bool:
    """`test(path)`, False where the file system refuses the question (a name too long, no permission)."""
    try:
        return test(path)
    except OSError:
        return False


def _files(folder: Path) -> list[Path]:
    """The files directly in `folder`; none when it is missing or cannot be listed."""
    try:
        return [p for p in folder.iterdir() if _is(p, Path.is_file)]
    except OSError:
        return []
