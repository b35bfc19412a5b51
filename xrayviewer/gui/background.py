"""The main window's background work: start workers, show their progress, cancel them."""

from __future__ import annotations

from xrayviewer.gui.workers import Worker, start


class BackgroundMixin:
    """Runs callables in the thread pool; results come back as signals, errors go to `show_error`."""

    def _run(self, fn, on_result, busy: str, pass_worker: bool = False, on_error=None) -> Worker:
        worker = Worker(fn, pass_worker=pass_worker)
        worker.signals.result.connect(on_result)
        worker.signals.error.connect(self.show_error)
        if on_error is not None:
            worker.signals.error.connect(on_error)
        worker.signals.progress.connect(self._progress)
        worker.signals.finished.connect(self._finished)
        self.workers.add(worker)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.setVisible(pass_worker)
        self.busy_label.setText(busy)  # beside the progress bar: the status message keeps its confirmation
        self.busy_label.show()
        return start(worker)

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _finished(self, worker: Worker) -> None:
        self.workers.discard(worker)
        if not self.workers:
            self.progress.hide()
            self.cancel_button.hide()
            self.busy_label.hide()

    def cancel_work(self) -> None:
        for worker in list(self.workers):
            worker.cancel()
