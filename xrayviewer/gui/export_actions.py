"""Export and information dialogs of the main window: PNG of the view, DICOM SC and SR (to a folder or a PACS node),
overlays of a study, tags, model card."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, Qt
from PySide6.QtWidgets import QDialog, QFileDialog, QInputDialog, QMessageBox, QTextBrowser, QVBoxLayout, QWidget

from xrayviewer.core.analysis.overlay import save_png
from xrayviewer.core.review.report_image import Reading, reading_picture
from xrayviewer.core.review.session import ReadingSession
from xrayviewer.gui.background import Tasks
from xrayviewer.gui.browser import StudyBrowser
from xrayviewer.gui.card_dialog import ModelCardDialog
from xrayviewer.gui.messages import Messages
from xrayviewer.gui.settings import Settings
from xrayviewer.gui.workers import Worker


class ExportActions(QObject):
    """Saves what the reader sees; shows the film's tags and the model's card.

    Collaborators: the session (the film on screen, the active pane, the engine), `tasks`, `settings` (the export
    folder), the study `browser` (the films of the study) and `messages`; dialogs open over `parent`."""

    def __init__(self, session: ReadingSession, tasks: Tasks, settings: Settings, browser: StudyBrowser,
                 messages: Messages, parent: QWidget) -> None:
        super().__init__(parent)
        self.session, self.tasks, self.saved, self.browser = session, tasks, settings, browser
        self.messages, self.dialog_parent = messages, parent

    def export_folder(self) -> str:
        """Where exports go: the last export folder, else XRay Viewer in the user's documents (never the package)."""
        documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation) or str(
            Path.home())
        return self.saved.export_folder() or str(Path(documents) / "XRay Viewer")

    def dicom_reading(self) -> Reading | None:
        """`reading`, with the identity the user confirms for a picture file (None: nothing or cancelled)."""
        reading = self.reading()
        if reading is None or reading.record.format == "dicom":
            return reading
        from xrayviewer.core.review.dicom_export import identified
        from xrayviewer.gui.identity_dialog import ask_identity

        identity = ask_identity(reading.record, self.dialog_parent)
        return None if identity is None else identified(reading, identity)

    def reading(self) -> Reading | None:
        """The film on screen with the active pane's result, the reader's decision and the marks."""
        pane, record = self.session.active, self.session.record
        if pane.view.shown is None or record is None:
            self.messages.error("Nothing to export: open a film first.")
            return None
        film, view = self.session.film, pane.view
        return Reading(record, pane.analysis, film.decision if film else None, tuple(view.marks),
                       rotation=view.rotation, flipped=view.flipped,
                       colormap=view.style.colormap if view.heatmap_shown() else None)

    def export_view(self) -> None:
        reading, view = self.reading(), self.session.active.view.shown
        if reading is None:
            return
        Path(self.export_folder()).mkdir(parents=True, exist_ok=True)
        name = f"{Path(reading.record.path).stem}.overlay.png"
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent, "Export view", str(Path(self.export_folder()) / name),
                                              "PNG (*.png)")
        if path:
            self.saved.set_export_folder(str(Path(path).parent))
            self.tasks.run(lambda: save_png(path, reading_picture(view, reading)),
                           lambda _: self.messages.status(f"Saved {path}", 8000), "Exporting PNG...")

    def export_dicom(self) -> None:
        """A Secondary Capture of the exported view and an SR of the result, decision and measurements."""
        reading, view = self.dicom_reading(), self.session.active.view.shown
        if reading is None:
            return
        Path(self.export_folder()).mkdir(parents=True, exist_ok=True)
        folder = QFileDialog.getExistingDirectory(self.dialog_parent, "Export DICOM SC and SR to",
                                                  self.export_folder())
        if not folder:
            return
        self.saved.set_export_folder(folder)
        engine, model = self.session.engine, self.session.active.settings.model

        def work():
            from xrayviewer.core.review.dicom_export import export_dicom

            full = with_model_hash(reading, engine, model)
            return export_dicom(full, reading_picture(view, full), Path(folder))

        self.tasks.run(work, lambda out: self.messages.status(f"Saved {out.sc.name} and {out.sr.name} in {folder}",
                                                              10000), "Exporting DICOM...")

    def send_to_pacs(self) -> None:
        """The SC and SR of the view, as `export_dicom` writes them, stored on a configured PACS node."""
        from xrayviewer.core.review.pacs_nodes import load_nodes

        try:
            nodes = load_nodes()
        except Exception as exc:  # noqa: BLE001 - an unreadable settings file is reported
            self.messages.error(str(exc))
            return
        if not nodes:
            self.messages.error("No PACS node is configured: add one in File > PACS nodes.")
            return
        if not self.unverified_ok():
            return
        name, chosen = QInputDialog.getItem(self.dialog_parent, "Send to PACS", "Store the SC and SR on", list(nodes),
                                            0, False)
        if not chosen:
            return
        reading, view = self.dicom_reading(), self.session.active.view.shown
        if reading is None:
            return
        node, engine, model = nodes[name], self.session.engine, self.session.active.settings.model

        def work():
            import tempfile

            from xrayviewer.core.review.dicom_export import export_dicom
            from xrayviewer.core.review.pacs import send
            from xrayviewer.core.review.pacs_nodes import data_folder

            full = with_model_hash(reading, engine, model)
            data_folder().mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".send-", dir=data_folder()) as folder:  # gone once sent
                out = export_dicom(full, reading_picture(view, full), Path(folder))
                send(node, [out.sc, out.sr])
            return node

        self.tasks.run(work, lambda sent: self.messages.status(f"Sent the SC and SR to {sent}", 10000),
                       f"Sending to {node.name}...")

    def unverified_ok(self) -> bool:
        """A film with a result and no reader decision is sent only when the reader says so: the SR would carry the
        AI's result alone."""
        film, analysis = self.session.film, self.session.active.analysis
        if analysis is None or (film is not None and film.decision is not None):
            return True
        answer = QMessageBox.question(
            self.dialog_parent, "Send to PACS",
            "No reader decision for this film: the SR would carry the AI's result alone, unverified by a reader "
            f"({analysis.model}: {analysis.label or 'no result'}). Send it anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def export_study(self) -> None:
        from xrayviewer.core.review import export  # with pydicom: loaded on first use, not before the window shows

        instances = self.browser.instance_paths()
        if not instances:
            self.messages.error("No study is open.")
            return
        folder = QFileDialog.getExistingDirectory(self.dialog_parent, "Export overlays to", self.export_folder())
        if not folder:
            return
        active = self.session.active
        settings, style, engine = active.settings, active.style, self.session.engine

        def work(worker: Worker) -> export.ExportSummary:
            return export.export_study(instances, Path(folder), engine, settings.model, settings.method,
                                       settings.target, style, worker.report_progress, lambda: worker.cancelled)

        def done(summary: export.ExportSummary) -> None:
            self.messages.status(f"Exported {summary.written} overlays to {folder}", 8000)
            if summary.failed:
                self.messages.error(f"{len(summary.failed)} of {len(instances)} films could not be exported; the "
                                    f"first: {summary.failed[0]}")

        self.tasks.run(work, done, "Exporting overlays...", pass_worker=True)

    def show_tags(self) -> None:
        from xrayviewer.core.review import export  # with pydicom: loaded on first use, not before the window shows

        record = self.session.record
        if record is None:
            return
        self._show_one(TagsDialog(f"Tags - {Path(record.path).name}", export.tag_dump(record), self.dialog_parent))

    def show_model_card(self) -> None:
        try:
            card = self.session.engine.model(self.session.active.settings.model).card.data
        except Exception as exc:  # noqa: BLE001
            self.messages.error(str(exc))
            return
        self._show_one(ModelCardDialog(card, self.dialog_parent))

    def _show_one(self, dialog: QDialog) -> None:
        """Show `dialog` in place of an open one of its kind: a day of looking at tags leaves one window."""
        for old in self.dialog_parent.findChildren(type(dialog)):
            if old is not dialog:
                old.close()
        dialog.show()


def with_model_hash(reading: Reading, engine, model: str) -> Reading:
    """`reading` with the SHA-256 of the model file its result came from (none without a result)."""
    digest = engine.model(model).digest if reading.analysis is not None else ""
    return replace(reading, model_sha256=digest)


class TagsDialog(QDialog):
    """A film's header as monospaced text (non-modal); deleted when closed."""

    def __init__(self, title: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(title)
        self.text = QTextBrowser()
        self.text.setFontFamily("monospace")
        self.text.setPlainText(text)
        QVBoxLayout(self).addWidget(self.text)
        self.resize(720, 600)
