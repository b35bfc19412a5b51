"""The exported picture of a reading: the view (film, heatmap, marks) above a result block people can read.

A film smaller than WORK_PX on its long side is enlarged to it first, so that marks and their labels are drawn
at a legible size. The block shows the heatmap's colour bar with its scale (when a heatmap is shown) and names
the patient and study, the model, the probability and threshold, the reader's decision (without one: that the AI
result is not verified by a reader) and the date; its text height is a fixed share of the picture's width, and long
lines wrap rather than shrink.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import cv2
import numpy as np

from xrayviewer.core.analysis.engine import Analysis
from xrayviewer.core.analysis.overlay import colorbar
from xrayviewer.core.analysis.wording import bar_top, percent
from xrayviewer.core.reading.readable import dicom_date, person_name
from xrayviewer.core.reading.record import ImageRecord
from xrayviewer.core.review.store import Decision, Mark

WORK_PX = 1024  # a smaller film is enlarged to this long side (bicubic); a larger one keeps its size
LINE_SHARE = 0.02  # the block's text height as a share of the picture's width
LABEL_SHARE = 0.018  # a mark's label height as a share of the picture's long side
MIN_LINE_PX = 14
BAR_SHARE = 0.4  # the colour bar's length as a share of the picture's width
MARK_RGB = (90, 230, 255)
TEXT_RGB = (255, 255, 160)
FONT = cv2.FONT_HERSHEY_SIMPLEX
Point = Callable[[float, float], tuple[float, float]]


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
    colormap: str | None = None  # the colours of the heatmap shown on the view; None when none is shown


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
        lines.append(f"AI: {a.model} ({a.method})  P(pneumonia) {percent(a.probability)}  threshold "
                     f"{percent(a.threshold)}  -> {a.label}{scope}")
    d = reading.decision
    if d is not None:
        lines.append(f"Reader: {d.decision.upper()} by {d.reader or '-'} at {d.decided_at}"
                     + (f"  note: {d.note}" if d.note else ""))
    else:
        lines.append("Reader: no decision recorded" + (" - AI result, not verified by a reader" if a else ""))
    lines.append(f"Exported {(when or datetime.now()).strftime('%Y-%m-%d %H:%M')}   XRay Viewer - research use "
                 "only, not a diagnosis")
    return [ascii_text(line) for line in lines]


def ascii_text(text: str) -> str:
    """What OpenCV's Hershey font can draw: degree and square signs spelt out, other letters as '?'."""
    return text.replace("\u00b0", " deg").replace("\u00b2", "^2").encode("ascii", "replace").decode()


def text_size(px: int) -> tuple[float, int]:
    """The Hershey scale and stroke thickness of text `px` pixels high."""
    thickness = max(1, round(px / 14))
    return cv2.getFontScaleFromHeight(FONT, px, thickness), thickness


def draw_marks(rgb: np.ndarray, marks: tuple[Mark, ...] | list[Mark]) -> np.ndarray:
    """Burn measurements and annotations into a copy of the film-sized picture; labels stay inside it."""
    out = rgb.copy()
    h = out.shape[0]
    thickness = max(1, round(h / 600))
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
            draw_label(out, ascii_text(mark.text), pts[1] if mark.kind == "angle" else pts[-1])
    return out


def draw_label(out: np.ndarray, text: str, anchor: np.ndarray) -> None:
    """`text` outlined beside `anchor` (right of it and above, else left or below where the edge is near),
    shrunk only when it is wider than the picture, and never cut off by an edge."""
    h, w = out.shape[:2]
    scale, thickness = text_size(round(LABEL_SHARE * max(h, w)))
    thickness = max(thickness, 2)  # OpenCV spaces 1-px strokes narrower: the outline would not cover them
    pad = thickness + 3  # the outline is 2 px wider than the stroke
    width = cv2.getTextSize(text, FONT, scale, thickness + 2)[0][0]
    if width > w - 2 * pad:
        scale *= (w - 2 * pad) / width
    (width, height), below = cv2.getTextSize(text, FONT, scale, thickness + 2)
    x = anchor[0] + 6 if anchor[0] + 6 + width <= w - pad else anchor[0] - 6 - width
    y = anchor[1] - 6 if anchor[1] - 6 - height >= pad else anchor[1] + 6 + height
    origin = (int(np.clip(x, pad, w - pad - width)), int(np.clip(y, pad + height, h - pad - below)))
    for color, extra in (((0, 0, 0), 2), (MARK_RGB, 0)):
        cv2.putText(out, text, origin, FONT, scale, color, thickness + extra, cv2.LINE_AA)


def wrapped(line: str, width: int, scale: float, thickness: int) -> list[str]:
    """`line` broken at spaces into pieces at most `width` pixels wide (a longer word stays whole)."""
    pieces, current = [], ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and cv2.getTextSize(candidate, FONT, scale, thickness)[0][0] > width:
            pieces.append(current)
            candidate = word
        current = candidate
    return pieces + [current]


def with_result_block(view: np.ndarray, lines: list[str], bar: tuple[str, str] | None = None) -> np.ndarray:
    """`view` (RGB) above a black block: the colour bar `bar` (colormap, what its top means) when given, then
    `lines`, wrapped to the width; text height a share of the view's width."""
    w = view.shape[1]
    line_px = max(round(w * LINE_SHARE), MIN_LINE_PX)
    scale, thickness = text_size(line_px)
    room = w - line_px
    rows = [piece for line in lines for piece in wrapped(line, room, scale, thickness)]
    widest = max(cv2.getTextSize(row, FONT, scale, thickness)[0][0] for row in rows)
    if widest > room:  # a word longer than the width (a long UID on a narrow film) shrinks rather than is cut
        scale *= room / widest
        line_px = max(round(line_px * room / widest), 8)
    step = round(line_px * 1.6)
    first = 1 if bar else 0
    block = np.zeros((step * (len(rows) + first) + line_px, w, 3), np.uint8)
    if bar:
        draw_bar(block, step, line_px, scale, thickness, bar)
    for i, row in enumerate(rows, start=first + 1):
        cv2.putText(block, row, (line_px // 2, step * i), FONT, scale, TEXT_RGB, thickness, cv2.LINE_AA)
    return np.vstack([view if view.ndim == 3 else cv2.cvtColor(view, cv2.COLOR_GRAY2RGB), block])


def draw_bar(block: np.ndarray, baseline: int, line_px: int, scale: float, thickness: int,
             bar: tuple[str, str]) -> None:
    """The heatmap's scale on one text row of `block`: "Heatmap: 0", the colormap's ramp, what its top means."""
    colormap, top = bar
    x = line_px // 2
    label = "Heatmap: 0"
    cv2.putText(block, label, (x, baseline), FONT, scale, TEXT_RGB, thickness, cv2.LINE_AA)
    x += cv2.getTextSize(label, FONT, scale, thickness)[0][0] + line_px // 2
    length = round(block.shape[1] * BAR_SHARE)
    block[baseline - line_px:baseline, x:x + length] = colorbar(colormap, length, line_px, vertical=False)
    cv2.putText(block, ascii_text(top), (x + length + line_px // 2, baseline), FONT, scale, TEXT_RGB, thickness,
                cv2.LINE_AA)


def oriented(view: np.ndarray, rotation: int, flipped: bool) -> tuple[np.ndarray, Point]:
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


def enlarged(view: np.ndarray, point: Point) -> tuple[np.ndarray, Point]:
    """`view` enlarged (bicubic) to WORK_PX on its long side when smaller, and `point` followed by the same
    scaling; a larger view comes back as it is."""
    h, w = view.shape[:2]
    factor = WORK_PX / max(h, w)
    if factor <= 1:
        return view, point
    size = (round(w * factor), round(h * factor))
    fx, fy = size[0] / w, size[1] / h

    def scaled(x: float, y: float) -> tuple[float, float]:
        px, py = point(x, y)
        return (px + 0.5) * fx - 0.5, (py + 0.5) * fy - 0.5  # pixel centres stay pixel centres

    return cv2.resize(view, size, interpolation=cv2.INTER_CUBIC), scaled


def heat_bar(reading: Reading) -> tuple[str, str] | None:
    """The colour bar the picture shows: the colormap and what its top means; None when no heatmap is shown."""
    cam = reading.analysis.cam if reading.analysis is not None else None
    return None if reading.colormap is None or cam is None else (reading.colormap, bar_top(cam.reference))


def reading_picture(view: np.ndarray, reading: Reading, when: datetime | None = None) -> np.ndarray:
    """The exported picture: the view turned as on screen and enlarged when small, the marks burned in, above
    the result block with the heatmap's colour bar."""
    picture, point = enlarged(*oriented(view, reading.rotation, reading.flipped))
    marks = [replace(m, points=[point(x, y) for x, y in m.points]) for m in reading.marks]
    return with_result_block(draw_marks(picture, marks), result_lines(reading, when), heat_bar(reading))
