"""The worklist: one row per film of the review store, most suspicious first, with the reader's decision keys.

Columns: review status (the decision, 'to read', or on a shared store 'reading' in amber when another reader has the
film and 'reading (you)' when this reader holds it), reader (who decided the film, or who is reading it now; the full
name and the time in its tooltip), AI
probability (digits beside a bar with the threshold), patient, patient ID, age and sex, accession, study date, view,
result (label, refused or unreadable); the header's context menu shows or hides them.
Sortable by any column; the default is the AI probability, highest first, refused films last.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QRectF, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from xrayviewer.core.analysis.wording import percent
from xrayviewer.core.reading.readable import age_sex, dicom_date, person_name
from xrayviewer.core.review.session import ai_positive, clock, primary_result
from xrayviewer.core.review.store import FilmRow

COLUMNS = ("Review", "Reader", "AI", "Patient", "ID", "Age/Sex", "Accession", "Study date", "View", "Result")
HIDDEN_BY_DEFAULT = ("Reader", "Accession", "Study date", "View")  # the header's menu shows them; a shared store Reader
READING = QColor(230, 170, 60)  # a film another reader is reading now
# Review fits "reading (you)"; Reader a name as long as "Dr Grace Hopper"; Result (last) stretches to the rest
WIDTHS = {"Review": 92, "Reader": 120, "AI": 92, "Patient": 100, "ID": 64, "Age/Sex": 62, "Accession": 80,
          "Study date": 80, "View": 56, "Result": 72}
AI_COLUMN = COLUMNS.index("AI")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROWS_CHANGED = 50  # more rows changed at once than this: the table is reset (sorted once) rather than row by row
DECISION_KEYS = (("1", "normal"), ("2", "pneumonia"), ("3", "uncertain"), ("4", "other"))


def result_text(film: FilmRow, model: str) -> str:
    """The Result column: the label, or why there is none."""
    result = primary_result(film, model)
    if film.info.error:
        return "unreadable"
    if result is None:
        return ""
    if result.refused and not result.out_of_scope:
        return "refused"
    return (result.label or "").lower()


class WorklistModel(QAbstractTableModel):
    """FilmRows as a table; `model` picks which model's result the AI columns show."""

    def __init__(self) -> None:
        super().__init__()
        self.films: list[FilmRow] = []
        self.model = ""
        self.reading: dict[int, str] = {}  # film id -> the reader reading it now (a shared store's claims)
        self.me = ""  # this reader's name

    def set_reading(self, reading: dict[int, str], me: str) -> None:
        """Who reads which film now: the Review and Reader cells of the films whose reader changed are announced
        (all of them when this reader's name changed; one range for all: 35 ms at 5,000 films)."""
        if (reading, me) == (self.reading, self.me):
            return
        moved = {i for i in reading.keys() | self.reading.keys() if reading.get(i) != self.reading.get(i)}
        everyone = me != self.me
        self.reading, self.me = reading, me
        rows = [r for r, f in enumerate(self.films) if f.id in moved]
        if self.films and (everyone or len(rows) > ROWS_CHANGED):
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.films) - 1, 1))
            return
        for row in rows:
            self.dataChanged.emit(self.index(row, 0), self.index(row, 1))

    def by_another(self, film: FilmRow) -> str:
        """The other reader reading the film now ('' when nobody else is)."""
        reader = self.reading.get(film.id, self.me)
        return "" if reader == self.me else reader

    def set_films(self, films: list[FilmRow], model: str) -> None:
        """Replace the rows. The same films in the same order for the same model (a decision, another reader's, a
        claim): only the rows that changed are announced, and the sort and filter move only those (a reset sorts
        every row again through Python: 1.9 s for 5,000 films); else the table is reset."""
        same = (model == self.model and len(films) == len(self.films)
                and all(a.id == b.id for a, b in zip(films, self.films)))
        changed = [row for row, (a, b) in enumerate(zip(films, self.films)) if a is not b and a != b] if same else []
        if same and len(changed) <= ROWS_CHANGED:
            self.films = films
            for row in changed:
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
            return
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
        if role == SORT_ROLE:
            if column == "AI":
                return film.suspicion()
            if column == "Study date":
                return film.info.study_date
            return self.data(index) or ""
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(film, column)
        if role == Qt.ItemDataRole.ForegroundRole and column in ("Review", "Reader") and film.decision is None:
            return READING if self.by_another(film) else None if film.id in self.reading else QColor(150, 150, 150)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        info = film.info
        result = primary_result(film, self.model)
        reading = self.reading.get(film.id)
        return {
            "Review": film.decision.decision if film.decision else self._reading_text(film),
            "Reader": reading or (film.decision.reader if film.decision else ""),
            "AI": None if result is None or result.probability is None else percent(result.probability),
            "Patient": person_name(info.patient_name) or info.patient_id or Path(info.path).name,
            "ID": info.patient_id,
            "Age/Sex": age_sex(info.patient_age, info.patient_sex),
            "Accession": info.accession,
            "Study date": dicom_date(info.study_date),
            "View": " ".join(filter(None, (info.modality, info.view_position))),
            "Result": result_text(film, self.model),
        }[column]

    def _reading_text(self, film: FilmRow) -> str:
        """The Review column of an undecided film: who has it now, if anyone."""
        if film.id not in self.reading:
            return "to read"
        return "reading" if self.by_another(film) else "reading (you)"

    def _tooltip(self, film: FilmRow, column: str) -> str | None:
        result = primary_result(film, self.model)
        if column == "Result" and result is not None and result.refused:
            return "\n".join(result.refused)
        if column == "Review" and film.decision is not None and film.decision.note:
            return film.decision.note
        if column in ("Review", "Reader") and film.id in self.reading:
            return f"Being read by {self.reading[film.id]}{' (you)' if not self.by_another(film) else ''}"
        if column == "Reader" and film.decision is not None:
            made = film.decision
            return (f"{'Second read' if made.second_read else 'Decided'} by {made.reader or 'an unnamed reader'}: "
                    f"{made.decision} ({clock(made.decided_at)})")
        name = person_name(film.info.patient_name)
        return "\n".join(filter(None, (name, film.info.error or film.info.path)))


SHOWN = ("All films", "AI positive", "Decided")  # the worklist's filter, beside "Unread only"


class UnreadFilter(QSortFilterProxyModel):
    """Sorts the worklist; with `unread_only`, hides the films that have a decision; `shown` keeps all films, those
    the AI calls positive, or those decided."""

    def __init__(self) -> None:
        super().__init__()
        self.unread_only = False
        self.shown = SHOWN[0]

    def set_unread_only(self, on: bool) -> None:
        self._change(lambda: setattr(self, "unread_only", on))

    def set_shown(self, shown: str) -> None:
        self._change(lambda: setattr(self, "shown", shown))

    def _change(self, change) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.10+; invalidateFilter is deprecated there
            self.beginFilterChange()
            change()
            self.endFilterChange()
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:  # noqa: N802
        table = self.sourceModel()
        film = table.films[row]
        if self.unread_only and film.decision is not None:
            return False
        if self.shown == "AI positive":
            return ai_positive(film, table.model)
        return self.shown != "Decided" or film.decision is not None


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
        text, box = bar_layout(QRectF(option.rect), option.fontMetrics.horizontalAdvance(">99.9%"))
        above = result.threshold is not None and result.probability >= result.threshold
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        painter.setPen(option.palette.highlightedText().color() if selected else option.palette.text().color())
        painter.drawText(text, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                         percent(result.probability))
        painter.fillRect(box, QColor(60, 60, 64))
        painter.fillRect(QRectF(box.left(), box.top(), box.width() * result.probability, box.height()),
                         QColor(200, 70, 50) if above else QColor(70, 130, 90))
        if result.threshold is not None:  # beside the digits, never across them
            x = box.left() + box.width() * result.threshold
            painter.setPen(QColor(240, 240, 240))
            painter.drawLine(int(x), int(box.top()) - 2, int(x), int(box.bottom()) + 2)
        painter.restore()

    def initStyleOption(self, option, index: QModelIndex) -> None:  # noqa: N802
        super().initStyleOption(option, index)
        option.text = ""  # the digits are drawn by paint, beside the bar


def bar_layout(cell: QRectF, digits_width: float) -> tuple[QRectF, QRectF]:
    """The AI cell split into the digits (left) and the probability bar (right), side by side."""
    text = QRectF(cell.left() + 2, cell.top(), digits_width, cell.height())
    bar = QRectF(text.right() + 5, cell.top() + 6, max(cell.right() - 3 - text.right() - 5, 4), cell.height() - 12)
    return text, bar


class NoteField(QLineEdit):
    """The note: Enter keeps it and Esc leaves it (`left`), so that the decision keys work again."""

    left = Signal()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.left.emit()
            return
        super().keyPressEvent(event)


class WorklistView(QWidget):
    """The table, the progress line, the unread filter, the note field and the decision buttons."""

    filmChosen = Signal(object)  # FilmRow
    decisionRequested = Signal(str)  # normal, pneumonia, uncertain, other
    columnsChanged = Signal(list)  # the hidden columns' names

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = WorklistModel()
        self.proxy = UnreadFilter()
        self.table.setParent(self)  # Qt owns them with the view: never deleted from a worker thread's collection
        self.proxy.setParent(self)
        self.proxy.setSourceModel(self.table)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        delegate = ProbabilityDelegate(self.table, self.proxy)
        delegate.setParent(self.view)
        self.view.setItemDelegateForColumn(AI_COLUMN, delegate)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(AI_COLUMN, Qt.SortOrder.DescendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)  # "IM-000...1.jpeg" five times told nothing apart;
        # the full name is in each row's tooltip
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(22)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(36)  # else Qt's 100 px floor for the last column scrolls the table sideways
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._column_menu)
        for name, width in WIDTHS.items():
            self.view.setColumnWidth(COLUMNS.index(name), width)
        self.set_hidden_columns(list(HIDDEN_BY_DEFAULT))
        self.view.clicked.connect(lambda index: self._chosen(index.row()))
        self.progress = QLabel("No worklist: Review > Review folder... (Ctrl+R)")
        self.progress.setWordWrap(True)  # a failure is said here in full
        self.unread_only = QCheckBox("Unread only")
        self.unread_only.setToolTip("Show only the films without a decision (U: next unread film)")
        self.unread_only.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.unread_only.toggled.connect(self._filter_unread)
        self.shown = QComboBox()
        self.shown.addItems(SHOWN)
        self.shown.setToolTip("Show all films, only those the AI calls positive (at or above the model's threshold), "
                              "or only the decided ones")
        self.shown.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.shown.currentTextChanged.connect(self._filter_shown)
        self.store_label = QLabel()
        self.store_label.setStyleSheet("color: #a0a0a0;")
        self.store_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reader = QLineEdit()  # asked once: kept in the settings, saved with each decision
        self.reader.setPlaceholderText("Your name, saved with each decision (asked once, kept)")
        self.reader.setToolTip("The reader named in the store, the exported picture and the DICOM SR; never the "
                               "computer's login")
        self.held = QLabel()  # "Being read by NAME": the film on screen is another reader's, read-only
        self.held.setStyleSheet("QLabel { background: #6a4a10; color: white; padding: 4px; }")
        self.held.setWordWrap(True)
        self.held.hide()
        self.note = NoteField()
        self.note.setPlaceholderText("Note for this film (N; Enter or Esc: back to the film), kept as you type")
        top = QHBoxLayout()  # under the progress line, so that the dock keeps the width it had
        top.addWidget(self.shown)
        top.addWidget(self.unread_only)
        top.addStretch(1)
        buttons = QHBoxLayout()
        self.buttons: list[QPushButton] = []
        for key, decision in DECISION_KEYS:
            button = QPushButton(f"{key} {decision.capitalize()}")
            button.setToolTip(f"Decide '{decision}' (key {key}) for the film on screen and go to the next film")
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setStyleSheet("QPushButton:disabled { color: #6a6a6a; }")  # the dark palette dims nothing itself
            button.clicked.connect(lambda _=False, d=decision: self.decisionRequested.emit(d))
            buttons.addWidget(button)
            self.buttons.append(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.progress)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.held)
        layout.addWidget(self.note)
        layout.addLayout(buttons)
        reader = QHBoxLayout()
        reader.addWidget(QLabel("Reader"))
        reader.addWidget(self.reader, 1)
        layout.addLayout(reader)
        layout.addWidget(self.store_label)

    def show_store(self, path: Path | str, shared: bool = False) -> None:
        """Where decisions are kept, under the buttons (the full path in its tooltip); `shared`: a server's URL."""
        self.store_label.setText(f"{'Shared worklist' if shared else 'Review store'}: {path}")
        self.store_label.setToolTip(f"Decisions, notes and marks are saved at once in {path}")

    def set_read_only(self, why: str) -> None:
        """The film on screen takes no decision (`why`, e.g. "Being read by NAME", said above the note), or does
        (''): the decision buttons follow."""
        self.held.setText(why)
        self.held.setVisible(bool(why))
        for button in self.buttons:
            button.setEnabled(not why)

    def set_films(self, films: list[FilmRow], model: str) -> None:
        """Replace the rows, keeping the current film selected at the same height on screen (rows that arrive
        or move above it do not move it) and the sort order."""
        current = self.current()
        before = self.view.visualRect(self.proxy.index(self.current_row(), 0)).top() if current else None
        self.table.set_films(films, model)
        reviewed = sum(f.decision is not None for f in films)
        self.progress.setText(f"{reviewed} of {len(films)} reviewed")
        if current is not None and self.select(current.id, emit=False, scroll=False):
            after = self.view.visualRect(self.proxy.index(self.current_row(), 0)).top()
            bar = self.view.verticalScrollBar()
            bar.setValue(bar.value() + (after - before) // max(self.view.verticalHeader().defaultSectionSize(), 1))

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

    def film(self, film_id: int) -> FilmRow | None:
        return next((f for f in self.table.films if f.id == film_id), None)

    def at(self, row: int) -> FilmRow | None:
        """The film shown at `row` (None past either end)."""
        if not 0 <= row < self.proxy.rowCount():
            return None
        return self.table.films[self.proxy.mapToSource(self.proxy.index(row, 0)).row()]

    def row_of(self, film_id: int) -> int:
        """The row the film is shown at; -1 when it is not shown (filtered out, or not in the worklist)."""
        source = next((i for i, f in enumerate(self.table.films) if f.id == film_id), None)
        return -1 if source is None else self.proxy.mapFromSource(self.table.index(source, 0)).row()

    def select(self, film_id: int, emit: bool = True, scroll: bool = True) -> bool:
        row = self.row_of(film_id)
        if row < 0:
            return False
        self._select_row(row, emit, scroll)
        return True

    def clear_selection(self) -> None:
        """No row is the film on screen (the reader opened a film from elsewhere)."""
        self.view.clearSelection()
        self.view.selectionModel().clearCurrentIndex()

    def neighbour(self, film_id: int, step: int) -> FilmRow | None:
        """The film `step` rows from `film_id` in the order shown, None past either end."""
        row = self.row_of(film_id)
        return None if row < 0 else self.at(row + step)

    def next_unread(self, after: int | None = None) -> FilmRow | None:
        """The first film without a decision that no other reader is reading, below the current row (or the row of
        film `after`), else from the top; None when all are read."""
        row = self.row_of(after) if after is not None else self.current_row()
        count = self.proxy.rowCount()
        rows = (r % count for r in range(row + 1, row + 1 + count))  # mapped one by one, as far as the first found
        return next((f for f in map(self.at, rows) if f.decision is None and not self.table.by_another(f)), None)

    def move(self, step: int | str) -> bool:
        """`step` rows down (negative: up), or "first" / "last"; the chosen film is announced. False when there
        was nowhere to go (the end of the worklist)."""
        count = self.proxy.rowCount()
        if not count:
            return False
        if step == "first":
            row = 0
        elif step == "last":
            row = count - 1
        else:
            row = min(max(self.current_row() + step, 0), count - 1)
        if row == self.current_row():
            return False
        self._chosen(row)
        return True

    def columns_width(self) -> int:
        """The width that shows every visible column without scrolling sideways."""
        shown = [i for i in range(len(COLUMNS)) if not self.view.isColumnHidden(i)]
        result = self.view.fontMetrics().horizontalAdvance("unreadable") + 16
        frame = 2 * self.view.frameWidth() + 2 * self.layout().contentsMargins().left() + 12  # borders, dock margins
        return sum(self.view.columnWidth(i) for i in shown[:-1]) + result + self.view.verticalScrollBar().sizeHint(
        ).width() + frame

    def hidden_columns(self) -> list[str]:
        return [name for i, name in enumerate(COLUMNS) if self.view.isColumnHidden(i)]

    def set_hidden_columns(self, names: list[str]) -> None:
        for i, name in enumerate(COLUMNS):
            self.view.setColumnHidden(i, name in names and name != "Review")

    def _column_menu(self, pos) -> None:
        menu = QMenu(self)
        for i, name in enumerate(COLUMNS[1:], 1):
            action = menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(not self.view.isColumnHidden(i))
            action.toggled.connect(lambda on, i=i: self._show_column(i, on))
        menu.exec(self.view.horizontalHeader().mapToGlobal(pos))
        menu.deleteLater()

    def _show_column(self, column: int, on: bool) -> None:
        self.view.setColumnHidden(column, not on)
        self.columnsChanged.emit(self.hidden_columns())

    def _filter_unread(self, on: bool) -> None:
        self._keeping_current(lambda: self.proxy.set_unread_only(on))

    def _filter_shown(self, shown: str) -> None:
        self._keeping_current(lambda: self.proxy.set_shown(shown))

    def _keeping_current(self, change) -> None:
        current = self.current()
        change()
        if current is not None:
            self.select(current.id, emit=False)

    def _select_row(self, row: int, emit: bool, scroll: bool = True) -> None:
        index = self.proxy.index(row, 0)
        self.view.selectRow(row)
        if scroll:
            self.view.scrollTo(index)
        if emit:
            self.filmChosen.emit(self.current())

    def _chosen(self, row: int) -> None:
        self._select_row(row, emit=True)
