"""Long work off the UI thread: a worker in Qt's global thread pool that reports its result or its error as signals
(as superqt's workers do).

The pool is given the worker's bound `run`, not a QRunnable subclass: PySide keeps a QRunnable subclass alive for
good when its `run` ends before `QThreadPool.start` has returned (a cached film: about 1 in 20 workers, each
holding what its function holds, the main window included; benchmarks/soak.py counts the live workers).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable

from PySide6.QtCore import QObject, QThreadPool, Signal

from xrayviewer.core.errors import Cancelled, XRayViewerError


_READERS = threading.Lock()


def load_readers() -> None:
    """Import pydicom and the readers (about half a second, gdcm most of it), one thread at a time: two threads that
    import pydicom at once can meet a half-initialised module ("cannot import name 'Dataset' from partially
    initialized module 'pydicom.dataset'"). Every worker calls it before its work; once loaded it costs a lock."""
    with _READERS:
        import xrayviewer.core.reading.reader  # noqa: F401
        import xrayviewer.core.reading.study  # noqa: F401


class SignalsGone(Exception):
    """The worker's signals were deleted with the application: the work stops quietly."""


class WorkerSignals(QObject):
    result = Signal(object)
    error = Signal(str)
    progress = Signal(int, int)  # done, total
    finished = Signal(object)  # the worker itself: a slot that forgets it needs no reference of its own


class Worker:
    """Runs `fn(*args, worker=self)` if it takes `worker`, else `fn(*args)`, in the global thread pool.

    Errors never escape: a project error becomes its message, anything else a one-line summary (the traceback
    goes to stderr for the log). `finished` carries the worker, so whoever keeps it alive until then connects a
    plain method (`workers.discard`): a lambda that captures the worker and is connected to the worker's own
    signals is a cycle through Qt's C++ side that Python never collects.
    """

    def __init__(self, fn: Callable, *args, pass_worker: bool = False) -> None:
        self.fn, self.args, self.pass_worker = fn, args, pass_worker
        self.signals = WorkerSignals()
        self.cancelled = False

    def run(self) -> None:
        try:
            load_readers()  # what the work may import, before it runs beside other workers
            value = self.fn(*self.args, worker=self) if self.pass_worker else self.fn(*self.args)
            if not self.cancelled:
                self._tell(self.signals.result, value, raise_gone=True)
        except SignalsGone:
            return  # the application is closing: nobody is left to tell
        except Cancelled:
            pass  # nobody wants the result any more: no result, no error
        except XRayViewerError as exc:
            self._tell(self.signals.error, str(exc))
        except Exception as exc:  # noqa: BLE001 - a worker must report, never take the app down
            traceback.print_exc()
            self._tell(self.signals.error, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        self._tell(self.signals.finished, self)

    def report_progress(self, done: int, total: int) -> None:
        """From `fn`: how far it is; stops the work (SignalsGone) once the application has closed."""
        self._tell(self.signals.progress, done, total, raise_gone=True)

    @staticmethod
    def _tell(signal, *args, raise_gone: bool = False) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # "Signal source has been deleted": the window closed while the work ran
            if raise_gone:
                raise SignalsGone from None

    def cancel(self) -> None:
        self.cancelled = True


def start(worker: Worker) -> Worker:
    QThreadPool.globalInstance().start(worker.run)
    return worker
