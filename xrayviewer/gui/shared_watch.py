"""A shared store watched: a look every few seconds off the GUI thread (who reads which film, the films other readers
decided or the nodes added, the lease on the film on screen renewed), and a banner over the films while the server
cannot be reached. The session decides what a look means (core/review/session.py: fetch_news, apply_news). After the
reader's own decision or undo (the session read that film alone) a look reads the other films at once, in the
background: every film was read again on the window's thread before."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QLabel

from xrayviewer.core.review.session import News, ReadingSession
from xrayviewer.gui.messages import Messages
from xrayviewer.gui.workers import Worker, start

POLL_S = 3.0  # how often the store is looked at; a look still under way is not doubled


class SharedWatch(QObject):
    """Given the session and the window's `messages`; owns the banner that the window places over the films."""

    def __init__(self, session: ReadingSession, messages: Messages, parent: QObject) -> None:
        super().__init__(parent)
        self.session, self.messages = session, messages
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel { background: #7a1f1f; color: white; padding: 6px; font-weight: bold; }")
        self.banner.hide()
        self.timer = QTimer(self)
        self.timer.setInterval(int(POLL_S * 1000))
        self.timer.timeout.connect(self.look)
        self.looking: Worker | None = None  # the look under way
        self.again = False  # a look is wanted as soon as the one under way is done (it began before a change here)
        session.connection_changed.connect(self._connection)
        session.decision_recorded.connect(self._changed_here)
        session.decision_undone.connect(self._changed_here)

    def start(self) -> None:
        """Look now and every POLL_S from now on (a shared store only)."""
        if self.session.shared and not self.timer.isActive():
            self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def look(self) -> None:
        if self.looking is not None or self.session.store is None:
            return
        self.again = False
        self.looking = worker = Worker(self.session.fetch_news())
        worker.signals.result.connect(self._news)
        worker.signals.finished.connect(self._looked)
        start(worker)

    def _news(self, news: News) -> None:
        if self.timer.isActive():  # not after the window closed
            self.session.apply_news(news)

    def _looked(self, _worker: Worker) -> None:
        self.looking = None
        if self.again and self.timer.isActive():
            self.look()

    def _changed_here(self, *_) -> None:
        """The reader decided or undid: the other films are read now, off the window's thread."""
        if self.looking is not None:
            self.again = True  # its films are older than the change: not applied (News.since), read once more
        elif self.timer.isActive():
            self.look()

    def _connection(self, problem: str) -> None:
        """The banner while the server cannot be reached; gone, and said in the status bar, once it is back."""
        if problem:
            self.banner.setText(f"The shared worklist at {self.session.place()} is unreachable: {problem} "
                                "Retrying; a note you type is kept here until it is back.")
            self.banner.show()
        else:
            self.banner.hide()
            self.messages.status(f"The shared worklist at {self.session.place()} is back; notes typed meanwhile are "
                                 "saved", 8000)
