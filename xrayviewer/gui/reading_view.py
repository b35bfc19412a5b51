"""The viewport with reading tools: rotate 90 and flip, length, angle, ROI, arrow and text marks, cine frames.

The left button does what the current tool says (window/level by default); marks live in film pixel
coordinates, so they stay on the anatomy through zoom, pan, rotation and flips. Delete removes the last mark.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF, QTransform
from PySide6.QtWidgets import QInputDialog, QWidget

from xrayviewer.core.reading.record import ImageRecord
from xrayviewer.core.review.measure import measure
from xrayviewer.core.review.store import Mark
from xrayviewer.gui.viewport import Viewport

TOOLS = {"wl": 0, "length": 2, "angle": 3, "roi": 2, "arrow": 2, "text": 1}  # tool -> points it needs
MARK_COLOR = QColor(90, 230, 255)


class ReadingViewport(Viewport):
    marksChanged = Signal()  # the reader added or removed a mark

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rotation = 0  # degrees clockwise, a multiple of 90
        self.flipped = False  # mirrored left-right (after rotation, as the reader sees it)
        self.tool = "wl"
        self.marks: list[Mark] = []
        self._points: list[tuple[float, float]] = []  # the mark being drawn
        self._hover: tuple[float, float] | None = None

    # ----- orientation -----
    def image_transform(self) -> QTransform:
        s = self.scale()
        t = QTransform().translate(self.width() / 2, self.height() / 2)
        t = t.rotate(self.rotation).scale(-s if self.flipped else s, s)
        return t.translate(-self.center[0], -self.center[1])

    def _fit_scale(self) -> float:
        if self.record is None:
            return 1.0
        w, h = self.record.columns, self.record.rows
        if self.rotation % 180:
            w, h = h, w
        return min(self.width() / w, self.height() / h)

    def rotate_90(self) -> None:
        self.rotation = (self.rotation + 90) % 360
        self.update()
        self.viewChanged.emit()

    def flip(self) -> None:
        self.flipped = not self.flipped
        self.update()
        self.viewChanged.emit()

    def reset(self) -> None:
        self.rotation, self.flipped = 0, False
        super().reset()

    # ----- frames and marks from outside -----
    def show_frame(self, record: ImageRecord) -> None:
        """Another frame of the same film: window, zoom, orientation and marks stay."""
        self.record = record
        self._render()

    def set_record(self, record: ImageRecord | None) -> None:
        self.marks, self._points = [], []
        super().set_record(record)

    def set_marks(self, marks: list[Mark]) -> None:
        self.marks = list(marks)
        self._points = []
        self.update()

    def set_tool(self, tool: str) -> None:
        self.tool = tool if tool in TOOLS else "wl"
        self._points = []
        self.setCursor(Qt.CursorShape.ArrowCursor if self.tool == "wl" else Qt.CursorShape.CrossCursor)
        self.update()

    def add_mark(self, kind: str, points: list[tuple[float, float]], text: str = "") -> Mark:
        mark = measure(self.record, kind, points, text)
        self.marks.append(mark)
        self.update()
        self.marksChanged.emit()
        return mark

    def remove_last_mark(self) -> None:
        if self.marks:
            self.marks.pop()
            self.update()
            self.marksChanged.emit()

    # ----- mouse and keys -----
    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.tool == "wl" or event.button() != Qt.MouseButton.LeftButton or self.record is None:
            super().mousePressEvent(event)
            return
        self.activated.emit()
        self.setFocus()
        point = self.to_image(event.position())
        if self.tool == "text":
            text, ok = QInputDialog.getText(self, "Text annotation", "Text:")
            if ok and text.strip():
                self.add_mark("text", [point], text.strip())
            return
        self._points.append(point)
        self._finish_if_complete()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self.tool != "wl" and self._points and TOOLS[self.tool] == 2 and len(self._points) == 1:
            point = self.to_image(event.position())
            if point != self._points[0]:  # a drag: press and release are the two ends
                self._points.append(point)
                self._finish_if_complete()
        super().mouseReleaseEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self.tool != "wl" and self.record is not None:
            self._hover = self.to_image(event.position())
            self._report_cursor(event.position())
            self.update()
            return
        super().mouseMoveEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.remove_last_mark()
        elif event.key() == Qt.Key.Key_Escape and (self._points or self.tool != "wl"):
            self.set_tool("wl")
        else:
            super().keyPressEvent(event)

    def _finish_if_complete(self) -> None:
        if len(self._points) >= TOOLS[self.tool]:
            points, self._points = self._points, []
            self.add_mark(self.tool, points)
        self.update()

    # ----- painting -----
    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        if self.record is None or (not self.marks and not self._points):
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setFont(QFont(self.font().family(), 10))
        for mark in self.marks:
            self._draw_mark(painter, mark.kind, mark.points, mark.text)
        if self._points and self._hover is not None:
            self._draw_mark(painter, self.tool, self._points + [self._hover], "")
        painter.end()

    def _draw_mark(self, painter: QPainter, kind: str, points, text: str) -> None:
        t = self.image_transform()
        p = [t.map(QPointF(x, y)) for x, y in points]
        painter.setPen(QPen(MARK_COLOR, 2))
        if kind in ("length", "arrow", "angle") and len(p) >= 2:
            painter.drawPolyline(QPolygonF(p))
        if kind == "arrow" and len(p) == 2:
            self._draw_head(painter, p[0], p[1])
        if kind == "roi" and len(p) == 2:
            painter.drawPolygon(QPolygonF([t.map(QPointF(x, y)) for x, y in _corners(points)]))
        if text:
            anchor = p[-1] if kind != "angle" else p[1]
            box = painter.boundingRect(QRectF(anchor.x() + 8, anchor.y() - 22, 400, 20), 0, text)
            if box.right() > self.width() - 28:  # keep the label on screen, clear of the colour bar
                box.moveRight(anchor.x() - 8)
            painter.fillRect(box.adjusted(-3, -1, 3, 1), QColor(0, 0, 0, 170))
            painter.drawText(box, text)

    @staticmethod
    def _draw_head(painter: QPainter, tail: QPointF, tip: QPointF) -> None:
        """The head at `tip`, the point where the reader released."""
        direction = tail - tip
        length = max((direction.x() ** 2 + direction.y() ** 2) ** 0.5, 1e-6)
        u = QPointF(direction.x() / length, direction.y() / length)
        n = QPointF(-u.y(), u.x())
        painter.setBrush(MARK_COLOR)
        painter.drawPolygon(QPolygonF([tip, tip + u * 14 + n * 6, tip + u * 14 - n * 6]))
        painter.setBrush(Qt.BrushStyle.NoBrush)


def _corners(points) -> list[tuple[float, float]]:
    (x0, y0), (x1, y1) = points
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
