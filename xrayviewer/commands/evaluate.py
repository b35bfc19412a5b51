"""`xrayviewer evaluate DIR`: accuracy, sensitivity, specificity, AUC... of a model on DIR/NORMAL and DIR/PNEUMONIA."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from xrayviewer.commands import add_model_options
from xrayviewer.core import read_image, to_display
from xrayviewer.core.engine import Engine
from xrayviewer.core.errors import user_error
from xrayviewer.core.metrics import binary_figures, roc_curve
from xrayviewer.core.overlay import save_png

CLASSES = ("NORMAL", "PNEUMONIA")
BATCH = 64


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="figures of a model on a labelled folder (NORMAL/ and PNEUMONIA/)")
    p.add_argument("folder", type=Path, metavar="DIR")
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
    if args.roc:
        save_png(args.roc, roc_image(y, s, figures))
    print(json.dumps(figures))
    return 1 if unreadable else 0


def roc_image(labels: np.ndarray, scores: np.ndarray, figures: dict, size: int = 480) -> np.ndarray:
    """The ROC curve with the operating point, drawn with OpenCV (RGB)."""
    fpr, tpr = roc_curve(labels, scores)
    pad = 48
    img = np.full((size, size, 3), 255, np.uint8)
    span = size - 2 * pad

    def xy(f: float, t: float) -> tuple[int, int]:
        return int(pad + f * span), int(size - pad - t * span)

    cv2.rectangle(img, xy(0, 0), xy(1, 1), (0, 0, 0), 1)
    cv2.line(img, xy(0, 0), xy(1, 1), (180, 180, 180), 1)
    cv2.polylines(img, [np.array([xy(f, t) for f, t in zip(fpr, tpr)], np.int32)], False, (200, 30, 30), 2,
                  cv2.LINE_AA)
    cv2.circle(img, xy(1 - figures["specificity"], figures["sensitivity"]), 6, (30, 30, 200), -1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, f"AUC {figures['auc']:.3f}  n={figures['n']}", (pad, pad - 16), font, 0.6, (0, 0, 0), 1)
    cv2.putText(img, "1 - specificity", (size // 2 - 60, size - 14), font, 0.5, (0, 0, 0), 1)
    cv2.putText(img, "sensitivity", (4, pad - 2), font, 0.45, (0, 0, 0), 1)
    return img
