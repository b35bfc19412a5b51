"""One film on screen: window/level, zoom, pan, invert, the heatmap overlay and the corner text.

Mouse and keys follow Weasis / OHIF: left-drag window/level, wheel or right-drag zoom,
middle-drag pan, I invert, R or Esc reset, F fit, 1 for 1:1, + and - zoom. The widget
only shows state; the pixels come from xrayviewer.core (display, overlay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen, QTransform
from PySide6.QtWidgets import QWidget

from xrayviewer.core import ImageRecord, Window
from xrayviewer.core.analysis.overlay import HeatLayer, OverlayStyle, as_rgb, colorbar
from xrayviewer.core.reading.display import to_display
from xrayviewer.core.reading.readable import dicom_date, person_name

WL_SENSITIVITY = 1 / 400  # of the pixel range, per screen pixel dragged
ZOOM_STEP = 1.15
CORNER_MARGIN, BAR_ROOM, CORNER_GAP = 8, 24, 4  # px: around the corner texts, the colour bar's strip, between blocks
WRAP = Qt.TextFlag.TextWordWrap
CORNER_FLAGS = {
    "top_left": Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | WRAP,
    "top_right": Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop | WRAP,
    "bottom_left": Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom | WRAP,
    "bottom_right": Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom | WRAP,
}
CORNER_PRIORITY = ("bottom_right", "top_left", "bottom_left", "top_right")  # kept first where space runs out


@dataclass(frozen=True)
class ViewGeometry:
    """What compare mode keeps in sync between viewports."""

    zoom: float  # 1 = fit to the widget
    center: tuple[float, float]  # image coordinates (x, y) shown at the widget's centre
    window: Window | None
    invert: bool


def to_qimage(rgb: np.ndarray, share: bool = False) -> QImage:
    """The RGB array as a QImage that owns a copy, or with `share` (a C-contiguous array that the caller keeps
    alive and unchanged as long as the image is used) one that reads the array's memory: no copy per W/L step."""
    shared = share and rgb.flags.c_contiguous
    rgb = rgb if shared else np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888)
    return image if shared else image.copy()


class Viewport(QWidget):
    viewChanged = Signal()  # the user changed zoom, pan, window or invert
    cursorInfo = Signal(str)
    activated = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(False)  # the main window takes drops
        self.setMinimumSize(200, 200)
        self.record: ImageRecord | None = None
        self.window: Window | None = None
        self.invert = False
        self.zoom = 1.0
        self.center = (0.0, 0.0)
        self.heat: np.ndarray | None = None
        self.against: np.ndarray | None = None  # evidence against the target, drawn as dashed lines
        self.style = OverlayStyle()
        self.caption = ""  # analysis text for the bottom-right corner
        self.bar_top = ""  # what the top of the colour bar means
        self.active = False
        self.display: np.ndarray | None = None  # windowed film, uint8
        self.shown: np.ndarray | None = None  # film with overlay, RGB
        self._layer: HeatLayer | None = None  # the coloured heatmap, kept while map and style stay (W/L drags)
        self._image: QImage | None = None
        self._drag: tuple[Qt.MouseButton, QPointF] | None = None

    # ----- state in -----
    def set_record(self, record: ImageRecord | None) -> None:
        self.record = record
        self.heat = self.against = None
        self.caption = ""
        self.reset()

    def set_heat(self, heat: np.ndarray | None, caption: str = "", bar_top: str = "",
                 against: np.ndarray | None = None) -> None:
        """The 8-bit heat to draw (None: none), the corner caption, what the colour bar's top means, and the
        evidence against the target on the heat's scale (None: none drawn)."""
        self.heat, self.caption, self.bar_top, self.against = heat, caption, bar_top, against
        self._compose()

    def set_style(self, style: OverlayStyle) -> None:
        self.style = style
        self._compose()

    def geometry_state(self) -> ViewGeometry:
        return ViewGeometry(self.zoom, self.center, self.window, self.invert)

    def apply_geometry(self, g: ViewGeometry, window: bool = True) -> None:
        """Take zoom, pan (and window/invert) from a synchronised viewport, without echoing a signal."""
        self.zoom, self.center = g.zoom, g.center
        if window and (g.window != self.window or g.invert != self.invert):
            self.window, self.invert = g.window, g.invert
            self._render()
        self.update()

    def reset(self) -> None:
        """Default window, no invert, fit to the widget."""
        self.invert = False
        self.window = self.record.window if self.record else None
        self.fit()
        self._render()

    def fit(self) -> None:
        self.zoom = 1.0
        if self.record is not None:
            self.center = (self.record.columns / 2, self.record.rows / 2)
        self.update()

    def one_to_one(self) -> None:
        if self.record is not None:
            self.zoom = 1.0 / self._fit_scale()
            self.update()

    # ----- rendering -----
    def _render(self) -> None:
        if self.record is None or self.window is None:
            self.display = self.shown = self._image = None
            self.update()
            return
        self.display = to_display(self.record, self.window, self.invert)
        self._compose()

    def _compose(self) -> None:
        if self.display is None:
            self.update()
            return
        heat = self.heat if self.heat is not None and self.heat.shape == self.display.shape[:2] else None
        against = self.against if heat is not None and self.against is not None and \
            self.against.shape == heat.shape else None
        if heat is not None and (self._layer is None or not self._layer.matches(heat, self.style, against)):
            self._layer = HeatLayer(heat, self.style, against)
        self.shown = self._layer.over(self.display) if heat is not None else as_rgb(self.display)
        self._image = to_qimage(self.shown, share=True)  # self.shown is replaced, never changed, while shown
        self.update()

    def _fit_scale(self) -> float:
        if self.record is None:
            return 1.0
        return min(self.width() / self.record.columns, self.height() / self.record.rows)

    def scale(self) -> float:
        return self._fit_scale() * self.zoom

    def image_transform(self) -> QTransform:
        """Image pixel coordinates -> widget coordinates (subclasses add rotation and flips)."""
        s = self.scale()
        return QTransform().translate(self.width() / 2, self.height() / 2).scale(s, s).translate(-self.center[0],
                                                                                                 -self.center[1])

    def to_image(self, pos: QPointF) -> tuple[float, float]:
        point = self.image_transform().inverted()[0].map(QPointF(pos))
        return point.x(), point.y()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        if self._image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale() < 2)
            painter.setTransform(self.image_transform())
            painter.drawImage(QPointF(0, 0), self._image)
            painter.resetTransform()
            self._draw_corners(painter)
            if self.heatmap_shown():
                self._draw_colorbar(painter)
        else:
            painter.setPen(QColor(150, 150, 150))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                             "Drop a DICOM file, an image or a folder here\nor use File > Open")
        if self.active:
            painter.setPen(QPen(QColor(70, 130, 220), 2))
            painter.drawRect(self.rect().adjusted(1, 1, -1, -1))
        painter.end()

    def corner_texts(self) -> dict[str, str]:
        r = self.record
        if r is None:
            return {}
        m = r.metadata
        w = self.window or r.window
        frame = f"Frame {r.frame + 1}/{r.frames}" if r.frames > 1 else ""
        return {
            "top_left": "\n".join(x for x in (person_name(m.patient_name), m.patient_id, dicom_date(m.study_date),
                                                 m.study_description) if x),
            "top_right": "\n".join(x for x in (" ".join(filter(None, (m.modality, m.body_part, m.view_position))),
                                               f"{r.columns} x {r.rows}", frame) if x),
            "bottom_left": f"W {w.width:.0f}  L {w.center:.0f}{'  INV' if self.invert else ''}\n"
                           f"Zoom {self.scale() * 100:.0f} %",
            "bottom_right": self.caption,
        }

    def heatmap_shown(self) -> bool:
        """Whether a heatmap is laid over the film (and its colour bar drawn)."""
        return self.heat is not None and self.style.visible

    def corner_font(self) -> QFont:
        return QFont(self.font().family(), 9)

    def corner_box(self) -> QRectF:
        """The part of the widget the corner texts share: inside the margins, left of the colour bar."""
        return QRectF(self.rect()).adjusted(CORNER_MARGIN, CORNER_MARGIN, -CORNER_MARGIN - BAR_ROOM, -CORNER_MARGIN)

    def corner_rects(self) -> dict[str, tuple[QRectF, str]]:
        """Each corner's block as drawn: its rectangle and its text, wrapped at spaces to the width (a longer word
        elided). Where two blocks side by side would overlap, bottom-left goes above bottom-right and top-right
        below top-left; a block that still overlaps a more important one (a very small view) is left out."""
        metrics, box = QFontMetricsF(self.corner_font(), self), self.corner_box()
        placed = {}
        for corner, text in self.corner_texts().items():
            if text:
                text = "\n".join(" ".join(metrics.elidedText(word, Qt.TextElideMode.ElideRight, box.width())
                                          for word in line.split(" ")) for line in text.splitlines())
                placed[corner] = (metrics.boundingRect(box, CORNER_FLAGS[corner], text), text)
        _stack(placed, "bottom_left", "bottom_right", above=True)
        _stack(placed, "top_right", "top_left", above=False)
        kept: dict[str, tuple[QRectF, str]] = {}
        for corner in CORNER_PRIORITY:
            if corner in placed and not any(placed[corner][0].intersects(rect) for rect, _ in kept.values()):
                kept[corner] = placed[corner]
        return kept

    def _draw_corners(self, painter: QPainter) -> None:
        """The corner texts, shadowed, laid out as `corner_rects` says (in a band as wide as the box, so that they
        wrap exactly as measured)."""
        painter.setFont(self.corner_font())
        box = self.corner_box()
        for corner, (rect, text) in self.corner_rects().items():
            band = QRectF(box.left(), rect.top(), box.width(), rect.height())
            for color, shift in ((QColor(0, 0, 0), 1), (QColor(235, 235, 160), 0)):
                painter.setPen(color)
                painter.drawText(band.translated(shift, shift), CORNER_FLAGS[corner], text)

    def _draw_colorbar(self, painter: QPainter) -> None:
        bar = to_qimage(colorbar(self.style.colormap, 256, 12))
        target = QRectF(self.width() - 20, self.height() / 4, 12, self.height() / 2)
        painter.drawImage(target, bar)
        painter.setPen(QColor(220, 220, 220))
        painter.drawRect(target)
        painter.setFont(QFont(self.font().family(), 8))
        for text, y in ((self.bar_top, target.top()), ("none", target.bottom())):
            box = painter.boundingRect(QRectF(0, 0, 96, 60), Qt.TextFlag.TextWordWrap, text)
            box.moveTopRight(QPointF(target.left() - 4, min(y, target.bottom() - box.height())))
            painter.fillRect(box.adjusted(-3, -1, 3, 1), QColor(0, 0, 0, 170))
            painter.setPen(QColor(235, 235, 160))
            painter.drawText(box, Qt.AlignmentFlag.AlignRight | Qt.TextFlag.TextWordWrap, text)

    # ----- interaction -----
    def mousePressEvent(self, event) -> None:  # noqa: N802
        self.activated.emit()
        self.setFocus()
        self._drag = (event.button(), event.position())

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        self._drag = None

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        self._report_cursor(pos)
        if self._drag is None or self.record is None:
            return
        button, last = self._drag
        dx, dy = pos.x() - last.x(), pos.y() - last.y()
        self._drag = (button, pos)
        if button == Qt.MouseButton.LeftButton:
            self.drag_window(dx, dy)
        elif button == Qt.MouseButton.RightButton:
            self.zoom_by(math.exp(-dy * 0.01))
        elif button == Qt.MouseButton.MiddleButton:
            s = self.scale()
            self.center = (self.center[0] - dx / s, self.center[1] - dy / s)
            self.update()
            self.viewChanged.emit()

    def drag_window(self, dx: float, dy: float) -> None:
        """Horizontal drag changes the width, vertical the level (center), as in Weasis and OHIF.

        Dragging down makes the film darker on screen for every film: MONOCHROME1 (high values dark) moves the
        level the other way.
        """
        w = self.window or self.record.window
        lo, hi = self.record.value_range
        step = ((hi - lo) or 1.0) * WL_SENSITIVITY
        level_step = -step if self.record.invert_default else step
        self.window = Window(w.center + dy * level_step, max(w.width + dx * step, 1e-3))
        self._render()
        self.viewChanged.emit()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        if anchor is not None:  # keep the image point under the cursor in place
            before = self.to_image(anchor)
            self.zoom = float(np.clip(self.zoom * factor, 0.05, 50))
            after = self.to_image(anchor)
            self.center = (self.center[0] + before[0] - after[0], self.center[1] + before[1] - after[1])
        else:
            self.zoom = float(np.clip(self.zoom * factor, 0.05, 50))
        self.update()
        self.viewChanged.emit()

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(ZOOM_STEP ** steps, event.position())

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        actions = {
            Qt.Key.Key_I: self.toggle_invert,
            Qt.Key.Key_R: self.reset,
            Qt.Key.Key_Escape: self.reset,
            Qt.Key.Key_F: self.fit,
            Qt.Key.Key_1: self.one_to_one,
            Qt.Key.Key_Plus: lambda: self.zoom_by(ZOOM_STEP),
            Qt.Key.Key_Equal: lambda: self.zoom_by(ZOOM_STEP),
            Qt.Key.Key_Minus: lambda: self.zoom_by(1 / ZOOM_STEP),
        }
        if key in actions and self.record is not None:
            actions[key]()
            self.viewChanged.emit()
        else:
            super().keyPressEvent(event)

    def toggle_invert(self) -> None:
        self.invert = not self.invert
        self._render()

    def set_window(self, window: Window) -> None:
        self.window = window
        self._render()
        self.viewChanged.emit()

    def _report_cursor(self, pos: QPointF) -> None:
        if self.record is None:
            return
        x, y = self.to_image(pos)
        col, row = int(math.floor(x)), int(math.floor(y))
        if 0 <= row < self.record.rows and 0 <= col < self.record.columns:
            value = self.record.pixels[row, col]
            text = ", ".join(f"{v:g}" for v in np.atleast_1d(value).tolist())
            self.cursorInfo.emit(f"x {col}  y {row}  value {text}")
        else:
            self.cursorInfo.emit("")


def _stack(placed: dict[str, tuple[QRectF, str]], mover: str, anchor: str, above: bool) -> None:
    """Move `mover`'s block just above (or below) `anchor`'s where the two overlap."""
    if mover in placed and anchor in placed and placed[mover][0].intersects(placed[anchor][0]):
        rect, fixed = placed[mover][0], placed[anchor][0]
        if above:
            rect.moveBottom(fixed.top() - CORNER_GAP)
        else:
            rect.moveTop(fixed.bottom() + CORNER_GAP)
