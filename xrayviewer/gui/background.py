"""Background work of the window: start workers, show their progress beside the status bar, cancel them."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton
from shiboken6 import isValid

from xrayviewer.gui.workers import Worker, start


class Tasks(QObject):
    """Runs callables in the thread pool; results come back to `on_result` in the GUI thread, errors go to
    `report_error`. Owns the busy text, the progress bar and the Cancel button that the window places in its status
    bar."""

    def __init__(self, report_error: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.report_error = report_error
        self.workers: set[Worker] = set()
        self.busy_label = QLabel()  # what the work in flight is doing
        self.busy_label.hide()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)

    def run(self, fn: Callable, on_result: Callable, busy: str, pass_worker: bool = False,
            on_error: Callable[[str], None] | None = None,
            on_progress: Callable[[int, int], None] | None = None) -> Worker:
        """`fn()` (or `fn(worker)` with `pass_worker`, which can then report progress and be cancelled)."""
        worker = Worker(fn, pass_worker=pass_worker)
        worker.signals.result.connect(self._while_alive(on_result))
        worker.signals.error.connect(self._while_alive(self.report_error))
        if on_error is not None:
            worker.signals.error.connect(self._while_alive(on_error))
        worker.signals.progress.connect(self._progress)
        if on_progress is not None:
            worker.signals.progress.connect(self._while_alive(on_progress))
        worker.signals.finished.connect(self._finished)
        self.workers.add(worker)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.setVisible(pass_worker)
        self.busy_label.setText(busy)  # beside the progress bar: the status message keeps its confirmation
        self.busy_label.show()
        return start(worker)

    def _while_alive(self, callback: Callable) -> Callable:
        """`callback`, called only while this object (and the window it belongs to) still exists: a result that
        arrives after the window closed is dropped, not drawn on deleted widgets."""
        return lambda *args: callback(*args) if isValid(self) else None

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _finished(self, worker: Worker) -> None:
        self.workers.discard(worker)
        if not self.workers:
            self.progress.hide()
            self.cancel_button.hide()
            self.busy_label.hide()

    def cancel(self) -> None:
        for worker in list(self.workers):
            worker.cancel()
