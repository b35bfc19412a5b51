"""Export and information dialogs of the main window: PNG of the view, overlays of a study, tags, model card."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDialog, QFileDialog, QTextBrowser, QVBoxLayout

from xrayviewer.core import XRayViewerError
from xrayviewer.core.overlay import save_png
from xrayviewer.gui.card_dialog import ModelCardDialog
from xrayviewer.gui.workers import Worker


class ExportMixin:
    """Saves what the reader sees; shows the film's tags and the model's card."""

    def export_view(self) -> None:
        from xrayviewer.core import export  # with pydicom: loaded on first use, not before the window shows

        pane = self.active
        if pane.view.shown is None:
            self.show_error("Nothing to export: open a film first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export view", str(Path(self._last_folder()) / "overlay.png"),
                                              "PNG (*.png)")
        if path:
            try:
                save_png(path, export.annotate(pane.view.shown, pane.style, pane.analysis))
            except XRayViewerError as exc:  # a read-only folder, a full disk: said, never silent
                self.show_error(str(exc))
                return
            self.statusBar().showMessage(f"Saved {path}", 5000)

    def export_study(self) -> None:
        from xrayviewer.core import export  # with pydicom: loaded on first use, not before the window shows

        instances = self.browser.instance_paths()
        if not instances:
            self.show_error("No study is open.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export overlays to", self._last_folder())
        if not folder:
            return
        settings, style, engine = self.active.settings, self.active.style, self.engine

        def work(worker: Worker) -> export.ExportSummary:
            return export.export_study(instances, Path(folder), engine, settings.model, settings.method,
                                       settings.target, style, worker.signals.progress.emit, lambda: worker.cancelled)

        def done(summary: export.ExportSummary) -> None:
            self.statusBar().showMessage(f"Exported {summary.written} overlays to {folder}", 8000)
            if summary.failed:
                self.show_error(f"{len(summary.failed)} of {len(instances)} films could not be exported; the first: "
                                f"{summary.failed[0]}")

        self._run(work, done, "Exporting overlays...", pass_worker=True)

    def show_tags(self) -> None:
        from xrayviewer.core import export  # with pydicom: loaded on first use, not before the window shows

        if self.record is None:
            return
        dialog = QDialog(self)
        dialog.setWindowTitle(f"Tags - {Path(self.record.path).name}")
        text = QTextBrowser()
        text.setFontFamily("monospace")
        text.setPlainText(export.tag_dump(self.record))
        QVBoxLayout(dialog).addWidget(text)
        dialog.resize(720, 600)
        dialog.show()

    def show_model_card(self) -> None:
        try:
            card = self.engine.model(self.active.settings.model).card.data
        except Exception as exc:  # noqa: BLE001
            self.show_error(str(exc))
            return
        ModelCardDialog(card, self).show()
