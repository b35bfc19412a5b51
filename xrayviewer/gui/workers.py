"""Long work off the UI thread: a QRunnable that reports its result or its error as signals (as superqt does)."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from xrayviewer.core.errors import XRayViewerError


class WorkerSignals(QObject):
    result = Signal(object)
    error = Signal(str)
    progress = Signal(int, int)  # done, total
    finished = Signal()


class Worker(QRunnable):
    """Runs `fn(*args, worker=self)` if it takes `worker`, else `fn(*args)`, in the global thread pool.

    Errors never escape: a project error becomes its message, anything else a one-line
    summary (the traceback goes to stderr for the log).
    """

    def __init__(self, fn: Callable, *args, pass_worker: bool = False) -> None:
        super().__init__()
        self.fn, self.args, self.pass_worker = fn, args, pass_worker
        self.signals = WorkerSignals()
        self.cancelled = False
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            value = self.fn(*self.args, worker=self) if self.pass_worker else self.fn(*self.args)
            if not self.cancelled:
                self.signals.result.emit(value)
        except XRayViewerError as exc:
            self.signals.error.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - a worker must report, never take the app down
            traceback.print_exc()
            self.signals.error.emit(f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        finally:
            self.signals.finished.emit()

    def cancel(self) -> None:
        self.cancelled = True


def start(worker: Worker) -> Worker:
    QThreadPool.globalInstance().start(worker)
    return worker
