"""Where the window says things: the banner over the views (errors, hidden after 15 s), the status bar's messages and
the pixel value under the cursor."""

from __future__ import annotations

from PySide6.QtCore import QObject, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizeGrip, QStatusBar, QWidget

from xrayviewer.core.review.session import NotSaved

BANNER_MS = 15000


class StatusBar(QStatusBar):
    """The window's status bar, whose message never runs under its permanent labels ("Research use only", the busy
    text): one too long for the room left of them ends in "..." and the bar's tooltip holds all of it. (Qt's own bar
    cuts it off at the first label, the end unreadable.)"""

    def message_room(self) -> QRect:
        """Where the message is drawn: from Qt's left margin to just before the first permanent widget shown."""
        shown = [w.x() for w in self.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
                 if w.isVisible() and not isinstance(w, QSizeGrip)]  # the others are hidden while a message shows
        right = min(shown, default=self.width() - 12) - 2
        return QRect(6, 0, max(right - 6, 0), self.height())

    def shown_message(self) -> str:
        """The message as it fits in `message_room`."""
        return self.fontMetrics().elidedText(self.currentMessage(), Qt.TextElideMode.ElideRight,
                                             self.message_room().width())

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        message, shown = self.currentMessage(), self.shown_message()
        self.setToolTip(message if shown != message else "")
        if shown != message:  # Qt drew it cut off: the room is painted over with the elided text
            painter = QPainter(self)
            room = self.message_room()
            painter.fillRect(room, self.palette().window())
            painter.setPen(self.palette().windowText().color())
            painter.drawText(room, Qt.AlignmentFlag.AlignLeading | Qt.AlignmentFlag.AlignVCenter
                             | Qt.TextFlag.TextSingleLine, shown)
            painter.end()


class Messages(QObject):
    """Given the window's status bar; owns the banner (placed over the views by the window) and the cursor label."""

    errorShown = Signal(str)  # a message in the banner (--screenshot stops at the first)

    def __init__(self, status_bar: QStatusBar) -> None:
        super().__init__(status_bar)  # Qt owns it: Python's collector never deletes it from a worker thread
        self.bar = status_bar
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel { background: #5a2a10; color: white; padding: 6px; }")
        self.banner.hide()
        self.cursor_label = QLabel()

    def error(self, message: str) -> None:
        """Non-modal: the banner, which hides itself, and the status bar."""
        self.banner.setText(message)
        self.banner.show()
        self.bar.showMessage(message, BANNER_MS)
        QTimer.singleShot(BANNER_MS, self.banner.hide)
        self.errorShown.emit(message)

    def status(self, message: str, ms: int = 0) -> None:
        self.bar.showMessage(message, ms)

    def current(self) -> str:
        return self.bar.currentMessage()

    def clear_wait(self) -> None:
        """A "Wait: ... still opening" message goes once the film it waited for is on screen."""
        if self.current().startswith("Wait:"):
            self.bar.clearMessage()

    def refused(self, refusal: Exception) -> None:
        """A session's refusal: a lost action or a failed write in the banner, an early one in the status bar."""
        if isinstance(refusal, NotSaved) or getattr(refusal, "banner", False):
            self.error(str(refusal))
        else:
            self.status(str(refusal), 5000)

    def cursor(self, text: str) -> None:
        self.cursor_label.setText(text)
