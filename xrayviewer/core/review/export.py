"""What the viewer exports: an annotated overlay PNG, all overlays of a study, a DICOM tag listing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pydicom

from xrayviewer.core.analysis.engine import Analysis, Engine
from xrayviewer.core.analysis.overlay import OverlayStyle, cam_overlay, colorbar, save_png
from xrayviewer.core.analysis.wording import percent
from xrayviewer.core.errors import OutputError, user_error
from xrayviewer.core.reading.display import to_display
from xrayviewer.core.reading.reader import read_image
from xrayviewer.core.reading.record import ImageRecord


def annotate(shown: np.ndarray, style: OverlayStyle, analysis: Analysis | None) -> np.ndarray:
    """The viewed film with a colorbar on the right (when a heatmap is shown) and the result along the bottom."""
    rgb = cv2.cvtColor(shown, cv2.COLOR_GRAY2RGB) if shown.ndim == 2 else shown.copy()
    h, w = rgb.shape[:2]
    bar_w = max(12, w // 60)
    panel = np.zeros((h, bar_w * 3, 3), np.uint8)
    if analysis is not None and analysis.cam is not None:
        bar = colorbar(style.colormap, h // 2, bar_w)
        panel[h // 4:h // 4 + bar.shape[0], bar_w:2 * bar_w] = bar
    out = np.hstack([rgb, panel])
    if analysis is not None:
        scale = max(0.4, w / 2400)
        cv2.rectangle(out, (0, h - int(40 * scale)), (out.shape[1], h), (0, 0, 0), -1)
        cv2.putText(out, result_text(analysis), (8, h - int(12 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 160), max(1, int(scale * 1.5)), cv2.LINE_AA)
    return out


def result_text(analysis: Analysis) -> str:
    """One line: the result, or why there is none; a study's overlays are the AI's alone, no reader's."""
    if analysis.label is None:
        return f"{analysis.model}: NOT ANALYSED - {'; '.join(map(str, analysis.refused))}"
    scope = "  OUT OF SCOPE (analysed anyway)" if analysis.out_of_scope else ""
    return (f"{analysis.model} {analysis.method}: {analysis.label} P(pneumonia)={percent(analysis.probability)} "
            f"(threshold {percent(analysis.threshold)}){scope}  - AI result not verified by a reader, research use "
            "only")


@dataclass
class ExportSummary:
    """What a study export did: how many PNGs it wrote, and one message per image it could not export."""

    written: int = 0
    failed: list[str] = field(default_factory=list)


def export_study(paths: list[Path], folder: Path, engine: Engine, model_name: str, method: str, target: str,
                 style: OverlayStyle, progress: Callable[[int, int], None] = lambda d, t: None,
                 cancelled: Callable[[], bool] = lambda: False) -> ExportSummary:
    """Annotated overlay PNGs of every image in `paths` into `folder` (refused ones with their reasons, no
    heatmap), each written atomically; an image that fails is one message in the summary and the rest go on."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(folder, "cannot export there", exc.strerror or str(exc),
                          "Choose a folder you can write to.") from None
    model = engine.model(model_name)
    summary = ExportSummary()
    for i, path in enumerate(paths):
        if cancelled():
            break
        progress(i, len(paths))
        try:
            record = read_image(path)
            display = to_display(record)
            analysis = engine.analyze(model, display, method, target, record)
            shown = cam_overlay(display, analysis.cam, style)
            save_png(folder / f"{i:04d}_{Path(path).stem}.{method}.png", annotate(shown, style, analysis))
            summary.written += 1
        except Exception as exc:  # noqa: BLE001 - one image's failure does not end the export
            summary.failed.append(str(user_error(path, exc, "could not be exported")))
    progress(len(paths), len(paths))
    return summary


def tag_dump(record: ImageRecord) -> str:
    """The DICOM header as text (pixel data left out), or what is known of a plain image."""
    if record.format != "dicom":
        return f"{record.path}\n{record.format}, {record.columns} x {record.rows}, {record.bits_stored}-bit, " \
               f"{record.photometric}, {record.frames} frame(s)"
    return str(pydicom.dcmread(record.path, stop_before_pixels=True, force=True))
