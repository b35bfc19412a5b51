"""What the viewer exports: an annotated overlay PNG, all overlays of a study, a DICOM tag listing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pydicom

from xrayviewer.core.display import to_display
from xrayviewer.core.engine import Analysis, Engine
from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.overlay import OverlayStyle, colorbar, composite, save_png
from xrayviewer.core.reader import read_image
from xrayviewer.core.record import ImageRecord


def annotate(shown: np.ndarray, style: OverlayStyle, analysis: Analysis | None) -> np.ndarray:
    """The viewed film with a colorbar on the right and the result written along the bottom (RGB)."""
    rgb = cv2.cvtColor(shown, cv2.COLOR_GRAY2RGB) if shown.ndim == 2 else shown.copy()
    h, w = rgb.shape[:2]
    bar_w = max(12, w // 60)
    bar = colorbar(style.colormap, h // 2, bar_w)
    panel = np.zeros((h, bar_w * 3, 3), np.uint8)
    panel[h // 4:h // 4 + bar.shape[0], bar_w:2 * bar_w] = bar
    out = np.hstack([rgb, panel])
    if analysis is not None:
        text = (f"{analysis.model} {analysis.method}: {analysis.label} P(pneumonia)={analysis.probability:.3f} "
                f"(threshold {analysis.threshold:.3f}){'  OUT OF DISTRIBUTION' if analysis.ood.get('flagged') else ''}"
                "  - research use only, not a diagnosis")
        scale = max(0.4, w / 2400)
        cv2.rectangle(out, (0, h - int(40 * scale)), (out.shape[1], h), (0, 0, 0), -1)
        cv2.putText(out, text, (8, h - int(12 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 160),
                    max(1, int(scale * 1.5)), cv2.LINE_AA)
    return out


def export_study(paths: list[Path], folder: Path, engine: Engine, model_name: str, method: str, target: str,
                 style: OverlayStyle, progress: Callable[[int, int], None] = lambda d, t: None,
                 cancelled: Callable[[], bool] = lambda: False) -> int:
    """Annotated overlay PNGs of every image in `paths` into `folder`; returns how many were written."""
    folder.mkdir(parents=True, exist_ok=True)
    model = engine.model(model_name)
    written = 0
    for i, path in enumerate(paths):
        if cancelled():
            break
        progress(i, len(paths))
        try:
            display = to_display(read_image(path))
        except XRayViewerError:
            continue  # listed as a problem in the study browser already
        analysis = engine.analyze(model, display, method, target)
        shown = composite(display, analysis.cam.heat, style)
        save_png(folder / f"{i:04d}_{Path(path).stem}.{method}.png", annotate(shown, style, analysis))
        written += 1
    progress(len(paths), len(paths))
    return written


def tag_dump(record: ImageRecord) -> str:
    """The DICOM header as text (pixel data left out), or what is known of a plain image."""
    if record.format != "dicom":
        return f"{record.path}\n{record.format}, {record.columns} x {record.rows}, {record.bits_stored}-bit, " \
               f"{record.photometric}, {record.frames} frame(s)"
    return str(pydicom.dcmread(record.path, stop_before_pixels=True, force=True))
