"""The worklist: one row per film of the review store, most suspicious first, with the reader's decision keys.

Columns: review status, AI probability (a bar with the threshold), patient, study date, view, label, refusal.
Sortable by any column; the default is the AI probability, highest first, refused films last.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QRectF, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyledItemDelegate,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from xrayviewer.core.readable import dicom_date, person_name
from xrayviewer.core.review_store import FilmRow

COLUMNS = ("Review", "AI", "Patient", "Study date", "View", "Label", "Refusal")
AI_COLUMN = COLUMNS.index("AI")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
DECISION_KEYS = (("1", "normal"), ("2", "pneumonia"), ("3", "uncertain"), ("4", "other"))


def primary_result(film: FilmRow, model: str):
    """The result of `model` for the film, else of any model it has, else None."""
    return film.results.get(model) or next(iter(film.results.values()), None)


class WorklistModel(QAbstractTableModel):
    """FilmRows as a table; `model` picks which model's result the AI columns show."""

    def __init__(self) -> None:
        super().__init__()
        self.films: list[FilmRow] = []
        self.model = ""

    def set_films(self, films: list[FilmRow], model: str) -> None:
        self.beginResetModel()
        self.films, self.model = films, model
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.films)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        film = self.films[index.row()]
        column = COLUMNS[index.column()]
        result = primary_result(film, self.model)
        if role == SORT_ROLE:
            if column == "AI":
                return film.suspicion()
            if column == "Study date":
                return film.info.study_date
            return self.data(index) or ""
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == "Refusal" and result is not None:
                return "\n".join(result.refused) or None
            return film.info.error or film.info.path
        if role == Qt.ItemDataRole.ForegroundRole and column == "Review" and film.decision is None:
            return QColor(150, 150, 150)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        info = film.info
        if column == "Review":
            return film.decision.decision if film.decision else "to read"
        if column == "Patient":
            return person_name(info.patient_name) or info.patient_id or Path(info.path).name
        if column == "Study date":
            return dicom_date(info.study_date)
        if column == "View":
            return " ".join(filter(None, (info.modality, info.view_position)))
        if column == "AI":
            return None if result is None or result.probability is None else f"{result.probability:.0%}"
        if column == "Label":
            return "unreadable" if info.error else (result.label or "") if result else ""
        return ("refused" if result.refused and not result.out_of_scope else "") if result else ""


class ProbabilityDelegate(QStyledItemDelegate):
    """The AI column as a bar: red above the model's threshold, with the threshold marked."""

    def __init__(self, table: WorklistModel, proxy: QSortFilterProxyModel) -> None:
        super().__init__()
        self.table, self.proxy = table, proxy

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        super().paint(painter, option, index)
        film = self.table.films[self.proxy.mapToSource(index).row()]
        result = primary_result(film, self.table.model)
        if result is None or result.probability is None:
            return
        box = QRectF(option.rect).adjusted(3, 4, -3, -4)
        above = result.threshold is not None and result.probability >= result.threshold
        painter.save()
        painter.fillRect(box, QColor(60, 60, 64))
        painter.fillRect(QRectF(box.left(), box.top(), box.width() * result.probability, box.height()),
                         QColor(200, 70, 50) if above else QColor(70, 130, 90))
        if result.threshold is not None:
            x = box.left() + box.width() * result.threshold
            painter.setPen(QColor(240, 240, 240))
            painter.drawLine(int(x), int(box.top()) - 2, int(x), int(box.bottom()) + 2)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, f"{result.probability:.0%}")
        painter.restore()


class WorklistView(QWidget):
    """The table, the progress line, the note field and the decision buttons."""

    filmChosen = Signal(object)  # FilmRow
    decisionRequested = Signal(str)  # normal, pneumonia, uncertain, other
    noteEdited = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = WorklistModel()
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSourceModel(self.table)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setItemDelegateForColumn(AI_COLUMN, ProbabilityDelegate(self.table, self.proxy))
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(AI_COLUMN, Qt.SortOrder.DescendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(22)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in enumerate((84, 76, 120, 80, 56, 84)):  # Review fits "pneumonia" and "uncertain"
            self.view.setColumnWidth(column, width)
        self.view.clicked.connect(lambda index: self._chosen(index.row()))
        self.progress = QLabel("No worklist: Review > Review folder... (Ctrl+R)")
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note for this film (N), saved with the decision")
        self.note.returnPressed.connect(lambda: self.noteEdited.emit(self.note.text()))
        buttons = QHBoxLayout()
        for key, decision in DECISION_KEYS:
            button = QPushButton(f"{key} {decision.capitalize()}")
            button.setToolTip(f"Decide '{decision}' (key {key}) and go to the next film")
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(lambda _=False, d=decision: self.decisionRequested.emit(d))
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.progress)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.note)
        layout.addLayout(buttons)

    def set_films(self, films: list[FilmRow], model: str) -> None:
        """Replace the rows, keeping the current film selected and the sort order."""
        current = self.current()
        self.table.set_films(films, model)
        reviewed = sum(f.decision is not None for f in films)
        self.progress.setText(f"{reviewed} of {len(films)} reviewed")
        if current is not None:
            self.select(current.id, emit=False)

    def order(self) -> list[FilmRow]:
        """The films in the order shown."""
        return [self.table.films[self.proxy.mapToSource(self.proxy.index(r, 0)).row()]
                for r in range(self.proxy.rowCount())]

    def current(self) -> FilmRow | None:
        rows = self.view.selectionModel().selectedRows()
        return self.table.films[self.proxy.mapToSource(rows[0]).row()] if rows else None

    def current_row(self) -> int:
        rows = self.view.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def select(self, film_id: int, emit: bool = True) -> bool:
        for r, film in enumerate(self.order()):
            if film.id == film_id:
                self._select_row(r, emit)
                return True
        return False

    def move(self, step: int | str) -> None:
        """`step` rows down (negative: up), or "first" / "last"; the chosen film is announced."""
        count = self.proxy.rowCount()
        if not count:
            return
        if step == "first":
            row = 0
        elif step == "last":
            row = count - 1
        else:
            row = min(max(self.current_row() + step, 0), count - 1)
        if row != self.current_row():
            self._chosen(row)

    def _select_row(self, row: int, emit: bool) -> None:
        index = self.proxy.index(row, 0)
        self.view.selectRow(row)
        self.view.scrollTo(index)
        if emit:
            film = self.current()
            self.note.setText(film.decision.note if film and film.decision else "")
            self.filmChosen.emit(film)

    def _chosen(self, row: int) -> None:
        self._select_row(row, emit=True)
