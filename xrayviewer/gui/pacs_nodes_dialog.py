"""The PACS nodes dialog: add, test (C-ECHO, in a worker) and remove the nodes the viewer may contact."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.pacs_nodes import Node, add_node, load_nodes, remove_node
from xrayviewer.gui.workers import Worker, start


class PacsNodesDialog(QDialog):
    """A table of the configured nodes with a form to add one; Test echoes the selected node."""

    nodesChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS nodes")
        self.workers: set[Worker] = set()
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Name", "AE title", "Host", "Port"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.name, self.aet, self.host = QLineEdit(), QLineEdit(), QLineEdit()
        self.aet.setMaxLength(16)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        form = QFormLayout()
        for label, field in (("Name", self.name), ("AE title", self.aet), ("Host", self.host), ("Port", self.port)):
            form.addRow(label, field)
        self.add_button, self.test_button = QPushButton("Add"), QPushButton("Test (echo)")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self.add)
        self.test_button.clicked.connect(self.test)
        self.remove_button.clicked.connect(self.remove)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.test_button, self.remove_button):
            buttons.addWidget(button)
        self.status = QLabel("Only these nodes are ever contacted.")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.resize(560, 420)
        self.refresh()

    def refresh(self) -> None:
        try:
            nodes = list(load_nodes().values())
        except XRayViewerError as exc:
            self.status.setText(str(exc))
            nodes = []
        self.table.setRowCount(len(nodes))
        for row, node in enumerate(nodes):
            for column, value in enumerate((node.name, node.aet, node.host, str(node.port))):
                self.table.setItem(row, column, QTableWidgetItem(value))

    def selected(self) -> Node | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            self.status.setText("Select a node first.")
            return None
        return load_nodes().get(self.table.item(rows[0].row(), 0).text())

    def add(self) -> None:
        try:
            node = add_node(self.name.text(), f"{self.aet.text().strip()}@{self.host.text().strip()}:"
                            f"{self.port.value()}")
        except XRayViewerError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText(f"Added {node}.")
        self.refresh()
        self.nodesChanged.emit()

    def remove(self) -> None:
        node = self.selected()
        if node is not None:
            remove_node(node.name)
            self.status.setText(f"Removed {node}.")
            self.refresh()
            self.nodesChanged.emit()

    def test(self) -> None:
        from xrayviewer.core.review.pacs import echo

        node = self.selected()
        if node is None:
            return
        self.status.setText(f"Echoing {node}...")
        worker = Worker(echo, node)
        worker.signals.result.connect(lambda _: self.status.setText(f"{node} answers."))
        worker.signals.error.connect(self.status.setText)
        worker.signals.finished.connect(self.workers.discard)
        self.workers.add(worker)
        start(worker)
