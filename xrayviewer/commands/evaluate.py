"""`xrayviewer evaluate DIR`: accuracy, sensitivity, specificity, AUC... of a model on DIR/NORMAL and DIR/PNEUMONIA."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from xrayviewer.commands import add_model_options, command_parser
from xrayviewer.core import read_image, to_display
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.metrics import binary_figures, roc_curve
from xrayviewer.core.analysis.overlay import save_png
from xrayviewer.core.errors import OutputError, user_error

CLASSES = ("NORMAL", "PNEUMONIA")
BATCH = 64


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "evaluate", "figures of a model on a labelled folder (NORMAL/ and PNEUMONIA/)",
        "Score every image of DIR/NORMAL/ and DIR/PNEUMONIA/ (DIR must hold both sub-folders; the folder name is "
        "the label) and print one JSON object: n, accuracy, sensitivity, specificity, precision, f1, auc, threshold "
        "(the model card's), confusion, unreadable. The gate is not applied: every image is scored.",
        "  xrayviewer evaluate data/test --model xception\n  xrayviewer evaluate data/test --roc roc.png")
    p.add_argument("folder", type=Path, metavar="DIR", help="folder holding NORMAL/ and PNEUMONIA/ sub-folders")
    add_model_options(p)
    p.add_argument("--roc", type=Path, metavar="PNG", help="also draw the ROC curve into this PNG")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = [(path, label) for label, cls in enumerate(CLASSES)
             for path in sorted((args.folder / cls).glob("*")) if path.is_file()]
    if not all((args.folder / cls).is_dir() for cls in CLASSES) or not files:
        print(f"error: {args.folder}: expected images in {args.folder / 'NORMAL'} and {args.folder / 'PNEUMONIA'}",
              file=sys.stderr)
        return 2
    engine = Engine(args.provider)
    model = engine.model(args.model)
    labels, scores, unreadable = [], [], 0
    for start in range(0, len(files), BATCH):
        displays, batch_labels = [], []
        for path, label in files[start:start + BATCH]:
            try:
                displays.append(to_display(read_image(path)))
                batch_labels.append(label)
            except Exception as exc:  # noqa: BLE001 - one unreadable film is one error line, the rest go on
                print(f"error: {user_error(path, exc, 'could not be read')}", file=sys.stderr)
                unreadable += 1
        if displays:
            scores += [i.probability for i in engine.infer(model, displays)]
            labels += batch_labels
    y, s = np.array(labels), np.array(scores)
    figures = binary_figures(y, s, model.card.threshold)
    figures.update({"model": model.card.name, "provider": model.provider, "unreadable": unreadable})
    print(json.dumps(figures), flush=True)  # first: an ROC that cannot be written never loses the figures
    if args.roc:
        try:
            save_png(args.roc, roc_image(y, s, figures))
        except OutputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 1 if unreadable else 0


def roc_image(labels: np.ndarray, scores: np.ndarray, figures: dict, size: int = 560) -> np.ndarray:
    """The ROC curve with axes, ticks, the chance line, the operating point and a legend with the AUC (RGB)."""
    fpr, tpr = roc_curve(labels, scores)
    left, right, top, bottom = 78, 24, 46, 64
    img = np.full((size, size, 3), 255, np.uint8)
    span_x, span_y = size - left - right, size - top - bottom
    font, black, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (150, 150, 150)

    def xy(f: float, t: float) -> tuple[int, int]:
        return int(round(left + f * span_x)), int(round(size - bottom - t * span_y))

    for tick in np.linspace(0, 1, 6):
        x, y = xy(tick, 0)[0], xy(0, tick)[1]
        cv2.line(img, (x, top), (x, size - bottom), (232, 232, 232), 1)  # grid
        cv2.line(img, (left, y), (size - right, y), (232, 232, 232), 1)
        cv2.line(img, (x, size - bottom), (x, size - bottom + 6), black, 1)  # ticks and their values
        cv2.line(img, (left - 6, y), (left, y), black, 1)
        text = f"{tick:.1f}"
        (w, h), _ = cv2.getTextSize(text, font, 0.45, 1)
        cv2.putText(img, text, (x - w // 2, size - bottom + 10 + h), font, 0.45, black, 1, cv2.LINE_AA)
        cv2.putText(img, text, (left - 10 - w, y + h // 2), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, xy(0, 1), xy(1, 0), black, 1)
    _dashed(img, xy(0, 0), xy(1, 1), grey)
    cv2.polylines(img, [np.array([xy(f, t) for f, t in zip(fpr, tpr)], np.int32)], False, (200, 30, 30), 2,
                  cv2.LINE_AA)
    point = xy(1 - figures["specificity"], figures["sensitivity"])
    cv2.circle(img, point, 6, (30, 30, 200), -1, cv2.LINE_AA)
    _centered(img, "1 - specificity (false positive rate)", left + span_x // 2, size - 12, 0.5)
    label = np.full((28, span_y, 3), 255, np.uint8)  # the y label, drawn flat and turned upright
    _centered(label, "sensitivity (true positive rate)", span_y // 2, 20, 0.5)
    img[top:top + span_y, 8:36] = cv2.rotate(label, cv2.ROTATE_90_COUNTERCLOCKWISE)
    _centered(img, f"ROC of {figures.get('model', 'the model')} (n={figures['n']})", left + span_x // 2, 28, 0.6)
    legend = [("line", (200, 30, 30), f"ROC, AUC {figures['auc']:.3f}"),
              ("dot", (30, 30, 200), f"threshold {figures['threshold']:.2f}"), ("dash", grey, "chance")]
    x0, y0 = xy(0.42, 0)[0], xy(0, 0)[1] - 18 - 22 * len(legend)
    cv2.rectangle(img, (x0 - 8, y0 - 16), (size - right - 8, y0 + 22 * len(legend) - 6), (255, 255, 255), -1)
    cv2.rectangle(img, (x0 - 8, y0 - 16), (size - right - 8, y0 + 22 * len(legend) - 6), grey, 1)
    for i, (kind, colour, text) in enumerate(legend):
        y = y0 + 22 * i
        if kind == "line":
            cv2.line(img, (x0, y - 4), (x0 + 24, y - 4), colour, 2, cv2.LINE_AA)
        elif kind == "dot":
            cv2.circle(img, (x0 + 12, y - 4), 5, colour, -1, cv2.LINE_AA)
        else:
            _dashed(img, (x0, y - 4), (x0 + 24, y - 4), colour)
        cv2.putText(img, text, (x0 + 32, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, black, 1, cv2.LINE_AA)
    return img


def _centered(img: np.ndarray, text: str, x: int, baseline: int, scale: float) -> None:
    (w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(img, text, (x - w // 2, baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _dashed(img: np.ndarray, start: tuple[int, int], end: tuple[int, int], colour, dash: int = 6) -> None:
    length = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    for a in np.arange(0, length, 2 * dash) / length:
        b = min(a + dash / length, 1.0)
        p = (int(start[0] + a * (end[0] - start[0])), int(start[1] + a * (end[1] - start[1])))
        q = (int(start[0] + b * (end[0] - start[0])), int(start[1] + b * (end[1] - start[1])))
        cv2.line(img, p, q, colour, 1, cv2.LINE_AA)
