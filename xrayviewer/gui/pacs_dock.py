"""The PACS query dock: search a configured node's studies, retrieve the chosen ones (C-GET, in a worker) into the
cache and review them as a worklist; and the main window's PACS actions (the dock, the nodes dialog)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (QComboBox, QDockWidget, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QMessageBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.pacs_nodes import cache_folder, load_nodes
from xrayviewer.core.review.session import ReadingSession, films_text
from xrayviewer.gui.background import Tasks
from xrayviewer.gui.docks import Docks
from xrayviewer.gui.messages import Messages
from xrayviewer.gui.pacs_nodes_dialog import PacsNodesDialog

COLUMNS = (("patient", "Patient"), ("patient_id", "ID"), ("date", "Date"), ("modalities", "Modalities"),
           ("description", "Description"), ("images", "Images"), ("accession", "Accession"))


class PacsQuery(QWidget):
    """Search fields, a table of studies and Retrieve; the work runs through `run(fn, on_result, busy)`."""

    retrieved = Signal(list)  # paths of the films written into the cache
    error = Signal(str)

    def __init__(self, run: Callable, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run = run
        self.studies: list[dict] = []
        self.node = QComboBox()
        self.patient, self.patient_id, self.dates = QLineEdit(), QLineEdit(), QLineEdit()
        self.modality, self.accession = QLineEdit("CR,DX"), QLineEdit()
        self.dates.setPlaceholderText("YYYYMMDD-YYYYMMDD")
        self.patient.setPlaceholderText("DOE^J*")
        form = QFormLayout()
        for label, field in (("Node", self.node), ("Patient", self.patient), ("Patient ID", self.patient_id),
                             ("Dates", self.dates), ("Modalities", self.modality), ("Accession", self.accession)):
            form.addRow(label, field)
        self.search_button, self.retrieve_button = QPushButton("Search"), QPushButton("Retrieve and review")
        self.search_button.clicked.connect(self.search)
        self.retrieve_button.clicked.connect(self.retrieve)
        self.patient.returnPressed.connect(self.search)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([title for _, title in COLUMNS])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.doubleClicked.connect(self.retrieve)
        self.found = QLabel()  # how many studies the last search found
        buttons = QHBoxLayout()
        buttons.addWidget(self.search_button)
        buttons.addWidget(self.retrieve_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.found)
        layout.addWidget(self.table, 1)
        self.reload_nodes()

    def reload_nodes(self) -> None:
        try:
            names = list(load_nodes())
        except XRayViewerError as exc:
            self.error.emit(str(exc))
            names = []
        current = self.node.currentText()
        self.node.clear()
        self.node.addItems(names)
        if current in names:
            self.node.setCurrentText(current)

    def _node(self):
        nodes = load_nodes()
        if self.node.currentText() not in nodes:
            self.error.emit("No PACS node is configured: add one in File > PACS nodes.")
            return None
        return nodes[self.node.currentText()]

    def search(self) -> None:
        from xrayviewer.core.review import pacs

        node = self._node()
        if node is None:
            return
        query = pacs.study_query(self.patient.text().strip(), self.patient_id.text().strip(),
                                 self.dates.text().strip(), self.modality.text().strip(), self.accession.text().strip())
        self.show_studies([])  # the last search's rows and highlighted row go, whatever this one finds or fails
        self.found.setText(f"Searching {node.name}...")
        self.run(lambda: pacs.find(node, query), self.show_studies, f"Searching {node.name}...",
                 on_error=lambda _: self.found.setText(f"The search of {node.name} failed"))

    def show_studies(self, studies: list[dict]) -> None:
        self.studies = studies
        self.table.clearSelection()
        self.table.setRowCount(len(studies))
        self.found.setText("1 study" if len(studies) == 1 else f"{len(studies)} studies")
        for row, study in enumerate(studies):
            for column, (key, _) in enumerate(COLUMNS):
                value = study.get(key)
                text = ", ".join(value) if isinstance(value, list) else "" if value is None else str(value)
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()  # "Descripti..." told nothing

    def retrieve(self) -> None:
        from xrayviewer.core.review import pacs

        node = self._node()
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        if node is None or not rows:
            if node is not None:
                self.error.emit("Select the studies to retrieve.")
            return
        uids = [self.studies[row]["StudyInstanceUID"] for row in rows]
        self.run(lambda: pacs.retrieve(node, uids, cache_folder()), self._retrieved,
                 f"Retrieving {len(uids)} studies from {node.name}...")

    def _retrieved(self, got) -> None:
        if got.failure is not None:  # the films that came before it are reviewed all the same
            self.error.emit(f"{got.summary()}. {got.failure}")
        elif got.problems:
            self.error.emit(f"{len(got.problems)} films were not kept; the first: {got.problems[0]}")
        if got.paths:
            self.retrieved.emit(list(dict.fromkeys(got.paths)))
        elif not got.problems and got.failure is None:
            self.error.emit("The node sent no image for these studies.")


class PacsPart(QObject):
    """The PACS query dock and the nodes dialog, made on first use. Collaborators: the session (is there a worklist
    to replace), `tasks`, `review_paths(paths)` (retrieved films become the worklist), `messages`, `docks`; dialogs
    open over `parent`."""

    def __init__(self, session: ReadingSession, tasks: Tasks, review_paths: Callable[[list], None],
                 messages: Messages, docks: Docks, parent: QWidget) -> None:
        super().__init__(parent)
        self.session, self.tasks, self.review_paths, self.messages, self.docks = session, tasks, review_paths, \
            messages, docks
        self.dialog_parent = parent
        self.query: PacsQuery | None = None
        self.dock: QDockWidget | None = None
        self.nodes_dialog: PacsNodesDialog | None = None

    def show_dock(self) -> None:
        if self.dock is None:
            self.query = PacsQuery(self.tasks.run)
            self.query.retrieved.connect(self.review_retrieved)
            self.query.error.connect(self.messages.error)
            self.dock = self.docks.add("PACS", "pacs", self.query)
        self.dock.show()
        self.dock.raise_()

    def review_retrieved(self, paths: list) -> None:
        """The retrieved films become the worklist; the day's worklist is replaced only when the reader says so
        (the films stay in the cache either way)."""
        if self.session.films:
            answer = QMessageBox.question(
                self.dialog_parent, "Retrieve and review",
                f"Replace the worklist ({films_text(len(self.session.films))}, {self.session.unread()} unread) with "
                f"the {films_text(len(paths))} retrieved?")
            if answer != QMessageBox.StandardButton.Yes:
                self.messages.status(f"{films_text(len(paths))} retrieved into the cache; the worklist stays", 10000)
                return
        self.review_paths(paths)

    def show_nodes(self) -> None:
        if self.nodes_dialog is None:
            self.nodes_dialog = PacsNodesDialog(self.dialog_parent)
            self.nodes_dialog.nodesChanged.connect(lambda: self.query.reload_nodes() if self.query else None)
        self.nodes_dialog.refresh()
        self.nodes_dialog.show()
