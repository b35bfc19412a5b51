"""The exported picture of a reading: the view (film, heatmap, marks) above a result block people can read.

The block names the patient and study, the model, the probability and threshold, the reader's decision and
the date; its text height is a fixed share of the film's height, so it stays legible on a 2,000-pixel film
and on a 224-pixel one alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import cv2
import numpy as np

from xrayviewer.core.engine import Analysis
from xrayviewer.core.readable import dicom_date, person_name
from xrayviewer.core.record import ImageRecord
from xrayviewer.core.review_store import Decision, Mark

LINE_SHARE = 0.022  # text line height as a share of the film's height
MIN_LINE_PX = 16
MARK_RGB = (90, 230, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Reading:
    """Everything an export says about one film."""

    record: ImageRecord
    analysis: Analysis | None = None
    decision: Decision | None = None
    marks: tuple[Mark, ...] = ()
    model_sha256: str = ""
    rotation: int = 0  # as on screen: degrees clockwise, a multiple of 90
    flipped: bool = False  # mirrored left-right after the rotation


def result_lines(reading: Reading, when: datetime | None = None) -> list[str]:
    """The block's lines, in the order a reader looks for them (ASCII: the PNG font has no other glyphs)."""
    m = reading.record.metadata
    patient = person_name(m.patient_name) or "(no name)"
    lines = [f"Patient: {patient}   ID: {m.patient_id or '-'}",
             f"Study: {dicom_date(m.study_date) or '-'}  {m.study_description}".rstrip()
             + f"   Study UID: {m.study_uid or '-'}"]
    a = reading.analysis
    if a is None:
        lines.append("AI: not analysed")
    elif a.label is None:
        lines.append(f"AI: {a.model} did not judge this film: {'; '.join(map(str, a.refused))}")
    else:
        scope = "  OUT OF SCOPE (analysed anyway)" if a.out_of_scope else ""
        lines.append(f"AI: {a.model} ({a.method})  P(pneumonia) {a.probability:.3f}  threshold {a.threshold:.3f}"
                     f"  -> {a.label}{scope}")
    d = reading.decision
    lines.append(f"Reader: {d.decision.upper()} by {d.reader or '-'} at {d.decided_at}"
                 + (f"  note: {d.note}" if d.note else "") if d else "Reader: no decision recorded")
    lines.append(f"Exported {(when or datetime.now()).strftime('%Y-%m-%d %H:%M')}   XRay Viewer - research use "
                 "only, not a diagnosis")
    return [ascii_text(line) for line in lines]


def ascii_text(text: str) -> str:
    """What OpenCV's Hershey font can draw: degree and square signs spelt out, other letters as '?'."""
    return text.replace("\u00b0", " deg").replace("\u00b2", "^2").encode("ascii", "replace").decode()


def draw_marks(rgb: np.ndarray, marks: tuple[Mark, ...] | list[Mark]) -> np.ndarray:
    """Burn measurements and annotations into a copy of the film-sized picture."""
    out = rgb.copy()
    h = out.shape[0]
    thickness = max(1, round(h / 600))
    scale = max(h * LINE_SHARE, MIN_LINE_PX) / 30
    for mark in marks:
        pts = np.array(mark.points, np.float64).round().astype(np.int32)
        if mark.kind == "roi" and len(pts) == 2:
            cv2.rectangle(out, tuple(pts[0]), tuple(pts[1]), MARK_RGB, thickness, cv2.LINE_AA)
        elif mark.kind == "arrow" and len(pts) == 2:
            tip_len = 0.04 * h / max(math.dist(pts[0], pts[1]), 1)
            cv2.arrowedLine(out, tuple(pts[0]), tuple(pts[1]), MARK_RGB, thickness, cv2.LINE_AA,
                            tipLength=min(tip_len, 0.5))
        elif len(pts) >= 2:
            cv2.polylines(out, [pts.reshape(-1, 1, 2)], False, MARK_RGB, thickness, cv2.LINE_AA)
        if mark.text:
            anchor = pts[1] if mark.kind == "angle" else pts[-1]
            text = ascii_text(mark.text)
            width = cv2.getTextSize(text, FONT, scale, thickness)[0][0]
            x = int(anchor[0]) + 6 if anchor[0] + 6 + width < out.shape[1] else max(int(anchor[0]) - 6 - width, 0)
            for color, extra in (((0, 0, 0), 2), (MARK_RGB, 0)):
                cv2.putText(out, text, (x, int(anchor[1]) - 6), FONT, scale, color, thickness + extra, cv2.LINE_AA)
    return out


def with_result_block(view: np.ndarray, lines: list[str]) -> np.ndarray:
    """`view` (RGB) with a black block of `lines` below it; text height a share of the view's height."""
    h, w = view.shape[:2]
    line_px = max(round(h * LINE_SHARE), MIN_LINE_PX)
    scale = cv2.getFontScaleFromHeight(FONT, line_px, 1)
    thickness = max(1, round(line_px / 14))
    width_needed = max(cv2.getTextSize(line, FONT, scale, thickness)[0][0] for line in lines) + line_px
    if width_needed > w:  # long lines shrink to the film's width rather than being cut off
        scale *= w / width_needed
        line_px = max(round(line_px * w / width_needed), 8)
    step = round(line_px * 1.6)
    block = np.zeros((step * len(lines) + line_px, w, 3), np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(block, line, (line_px // 2, step * (i + 1)), FONT, scale, (255, 255, 160), thickness,
                    cv2.LINE_AA)
    return np.vstack([view if view.ndim == 3 else cv2.cvtColor(view, cv2.COLOR_GRAY2RGB), block])


def oriented(view: np.ndarray, rotation: int, flipped: bool) -> tuple[np.ndarray, Callable]:
    """`view` turned `rotation` degrees clockwise and mirrored when `flipped`, as the reader sees it, and the
    function that takes a film (x, y) to the turned picture's (x, y)."""
    turns = rotation // 90 % 4
    turned = np.rot90(view, -turns)
    if flipped:
        turned = turned[:, ::-1]

    def point(x: float, y: float) -> tuple[float, float]:
        rows, cols = view.shape[:2]
        for _ in range(turns):  # a clockwise quarter turn: (x, y) -> (rows - 1 - y, x), and rows and cols swap
            x, y, rows, cols = rows - 1 - y, x, cols, rows
        return (cols - 1 - x, y) if flipped else (x, y)

    return np.ascontiguousarray(turned), point


def reading_picture(view: np.ndarray, reading: Reading, when: datetime | None = None) -> np.ndarray:
    """The exported picture: the view turned as on screen, the marks burned in, above the result block."""
    picture, point = oriented(view, reading.rotation, reading.flipped)
    marks = [replace(m, points=[point(x, y) for x, y in m.points]) for m in reading.marks]
    return with_result_block(draw_marks(picture, marks), result_lines(reading, when))
