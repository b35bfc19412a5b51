"""Review mode: a folder becomes a worklist in the review store; the reader steps through it and decides.

Keys: Down/PgDn next film, Up/PgUp previous, Home/End first/last, U next unread, 1 normal, 2 pneumonia,
3 uncertain, 4 other (each decision is committed at once and moves on), Ctrl+Z withdraws the last decision,
N the note (Enter or Esc: back to the film). Without a worklist, Down/Up step through the study browser's films.
The film after the current one is decoded ahead.

The rules (a decision, note or mark lands on the film on screen; a decision on a film still opening is refused; undo;
drafts) are the reading session's (core/review/session.py); this part shows its worklist and turns keys into its
calls. The note field's part lives in review_notes.py.

On a shared store (`--db postgresql://...`) the worklist without a folder is the department's, every film in the
store; the film on screen is held in the reader's name; another reader's film is read-only and says by whom; U and
a decision go on to the next unread film nobody else reads; shared_watch.py looks at the store every few seconds
(off the GUI thread) and shows a banner while the server cannot be reached. A decision on a film another reader
decided (on any store) asks once whether to record it as a second read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from xrayviewer.core.reading.film_cache import FilmCache
from xrayviewer.core.review.session import NotSaved, ReadingSession, Refused, SecondRead, films_text
from xrayviewer.core.review.store import FilmRow
from xrayviewer.core.review.store_sql import masked
from xrayviewer.core.review.worklist import Worklist
from xrayviewer.gui.background import Tasks
from xrayviewer.gui.browser import StudyBrowser
from xrayviewer.gui.docks import Docks
from xrayviewer.gui.menus import add_action
from xrayviewer.gui.messages import Messages
from xrayviewer.gui.review_notes import NotesPart
from xrayviewer.gui.settings import Settings
from xrayviewer.gui.shared_watch import SharedWatch
from xrayviewer.gui.workers import Worker, start
from xrayviewer.gui.worklist_view import DECISION_KEYS, HIDDEN_BY_DEFAULT, WorklistView

COLUMNS_KEY = "worklist_hidden_columns"
REFRESH_S = 0.5  # while the worklist fills, rows are refreshed at most this often


class ReviewPart(QObject):
    """The worklist view of the session's worklist, the review menu and keys, decisions and the decode-ahead.

    Collaborators: the session; `tasks` (background work); `settings` (the reader's name); `open_film(path)` puts a
    film on screen; `films` (the decode-ahead cache); `browser` (Down/Up without a worklist); `docks` (the worklist's
    dock, beside the study browser's); `last_folder()` for the dialog; `messages`."""

    def __init__(self, session: ReadingSession, tasks: Tasks, settings: Settings, films: FilmCache,
                 browser: StudyBrowser, open_film: Callable[[Path], None], docks: Docks,
                 last_folder: Callable[[], str], messages: Messages, parent: QWidget) -> None:
        super().__init__(parent)
        self.session, self.tasks, self.saved, self.films, self.browser = session, tasks, settings, films, browser
        self.open_film, self.docks, self.last_folder, self.messages = open_film, docks, last_folder, messages
        self.dialog_parent = parent
        self._resumed = False  # the worklist has put its first film on screen
        self._first: int | None = None  # the film the worklist chose itself while it filled
        self._last_refresh = 0.0
        self._ahead: set[Worker] = set()  # decode-ahead workers in flight
        self.worklist = WorklistView()
        self.worklist.show_store(masked(str(session.db_path)) if session.shared else session.db_path, session.shared)
        self.worklist.setMinimumWidth(300)
        self.dock = docks.add("Worklist", "worklist", self.worklist)
        self.worklist.filmChosen.connect(self.show_worklist_film)
        self.worklist.decisionRequested.connect(self.decide)
        self.worklist.columnsChanged.connect(lambda names: self._set_state(COLUMNS_KEY, json.dumps(names)))
        self.notes = NotesPart(session, self.worklist.note, self.worklist.film, messages)
        self.decision_actions: list[QAction] = []
        self.worklist.reader.setText(settings.reader())
        self.worklist.reader.textEdited.connect(settings.set_reader)
        self.worklist.reader.editingFinished.connect(self._reader_named)
        self._named = settings.reader()  # the name the film on screen is held under
        session.reader = settings.reader
        session.films_changed.connect(self._films_changed)
        session.film_shown.connect(self._film_shown)
        session.claims_changed.connect(lambda claims: self.worklist.table.set_reading(
            {film_id: claim.reader for film_id, claim in claims.items()}, session.reader().strip()))
        session.hold_changed.connect(lambda *_: self.worklist.set_read_only(session.read_only()))
        self.watch = SharedWatch(session, messages, self)
        parent.installEventFilter(self)  # the window closing: the note kept, the film held given back

    def build_menu(self, menu: QMenu) -> None:
        """The Review menu: moving, deciding, undo, note."""
        parent = self.dialog_parent
        add_action(menu, parent, "Review folder...", self.review_folder_dialog, "Ctrl+R")
        if self.session.shared:
            add_action(menu, parent, "Shared worklist (every film)", self.review_store)
        moves = [("Next film", 1, ("Down", "PgDown")), ("Previous film", -1, ("Up", "PgUp")),
                 ("First film", "first", ("Home",)), ("Last film", "last", ("End",))]
        for text, step, keys in moves:
            action = add_action(menu, parent, text, lambda _=False, s=step: self.step_film(s))
            action.setShortcuts([QKeySequence(k) for k in keys])
        add_action(menu, parent, "Next unread film", self.next_unread, "U")
        unread = add_action(menu, parent, "Unread films only", self.worklist.unread_only.setChecked, "Ctrl+U",
                            checkable=True)
        self.worklist.unread_only.toggled.connect(unread.setChecked)
        menu.addSeparator()
        for key, decision in DECISION_KEYS:
            action = add_action(menu, parent, f"Decide: {decision}", lambda _=False, d=decision: self.decide(d), key)
            action.setEnabled(False)  # only with a worklist; else "1" is the viewport's 1:1
            self.decision_actions.append(action)
        add_action(menu, parent, "Undo the last decision", self.undo_decision, QKeySequence.StandardKey.Undo)
        add_action(menu, parent, "Note...", self.notes.edit_note, "N")
        add_action(menu, parent, "Set reader name...", self.ask_reader_name)
        menu.addSeparator()
        add_action(menu, parent, "Export the worklist's report (CSV or PDF)...", self.export_report_dialog)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self.dialog_parent and event.type() == QEvent.Type.Close:
            self.leave()
        return False

    def leave(self) -> None:
        """The viewer closes (its window, or the application quits): no more looks, the note typed kept, the film
        held on a shared store given back."""
        self.watch.stop()
        self.session.close()

    def _reader_named(self) -> None:
        """The reader's name was typed: on a shared store the film on screen is held under it."""
        previous, self._named = self._named, self.saved.reader()
        if self._named != previous:
            self.session.renamed(previous)

    # ----- the store and the worklist -----
    def open_store(self):
        if self.session.store is None:
            self.session.open_store()
            hidden = json.loads(self.session.state(COLUMNS_KEY, json.dumps(HIDDEN_BY_DEFAULT)))
            if self.session.shared:  # who reads which film
                hidden = [name for name in hidden if name != "Reader"]
            self.worklist.set_hidden_columns(hidden)
        return self.session.store

    def _set_state(self, key: str, value: str) -> None:
        try:
            self.session.set_state(key, value)
        except NotSaved as exc:
            self.messages.error(str(exc))

    def resume_review(self) -> bool:
        """At start: the last worklist from the store (when there is one), at the film the reader was on. False
        when there is none (the study browser goes in front)."""
        try:
            if not self.session.shared and self.session.db_path.is_file():
                self.open_store()
            roots = self.session.saved_roots()
        except Exception as exc:  # noqa: BLE001 - a damaged store is reported, the viewer still starts
            self.messages.error(str(exc))
            return False
        if not roots:
            return False
        self.show_dock()
        self._resumed = False
        self.session.resume(roots)
        self._resume()
        return True

    def show_dock(self) -> None:
        """The worklist in front, wide enough for its shown columns."""
        self.docks.bring_forward(self.dock, self.worklist.columns_width())

    def review_store(self) -> None:
        """The department's worklist: every film of the shared store, the first unread one nobody reads on screen."""
        if not self._begin(self.session.review_store):
            return
        others = self.session.others()
        busy = sum(f.decision is None and f.id in others for f in self.session.films)
        self.messages.status(f"Shared worklist at {self.session.place()}: {films_text(len(self.session.films))}, "
                             f"{self.session.unread() - busy} unread, {busy} being read by others", 8000)

    def _begin(self, fill: Callable[[], None]) -> bool:
        """Open the store and `fill` the session's worklist, then show it and resume there; False (the error said)
        when the store or the worklist cannot be used."""
        try:
            self.open_store()
            fill()
        except Exception as exc:  # noqa: BLE001 - an unusable store is reported, the viewer goes on
            self.messages.error(str(exc))
            return False
        self.show_dock()
        self._resumed = False
        self._resume()
        self.watch.start()  # on a shared store only
        return True

    def review_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.dialog_parent, "Review a folder of films", self.last_folder())
        if folder:
            self.review_paths([folder])

    def review_paths(self, paths: list[str | Path]) -> None:
        """Make `paths` the worklist: films already in the store show at once, the rest are analysed behind, and
        the first film is on screen as soon as one is known."""
        if not self._begin(lambda: self.session.set_worklist(paths)):
            return
        worklist = Worklist(self.session.store, self.session.engine, [self.session.active.settings.model])
        roots = list(self.session.roots)

        def work(worker: Worker) -> int:
            for _ in worklist.run_items(worklist.first(roots)):  # on screen before the rest are even listed
                worker.report_progress(1, 0)
            items = worklist.scan(roots)
            for done, _ in enumerate(worklist.run_items(items, lambda: worker.cancelled), 1):
                worker.report_progress(done, len(items))
            return len(items)

        self.tasks.run(work, self._worklist_filled, "Analysing the worklist...", pass_worker=True,
                       on_error=self._worklist_failed, on_progress=self._worklist_progress)

    def _worklist_failed(self, message: str) -> None:
        """Said where the count of reviewed films would be, and stays there: "0 of 0 reviewed" hid a failure."""
        self.worklist.progress.setText(f"The worklist could not be filled: {message}")
        self.worklist.progress.setToolTip(message)

    def _worklist_filled(self, count: int) -> None:
        self.session.reload()
        self._resume()
        self._most_suspicious_first()
        self.messages.status(f"Worklist ready: {films_text(count)}", 8000)

    def _worklist_progress(self, done: int, total: int) -> None:
        if self.session.roots and (not self._resumed or time.monotonic() - self._last_refresh > REFRESH_S):
            self.session.reload()
            self._resume()

    def refresh_worklist(self) -> None:
        """Reload the rows of the worklist's films from the store."""
        self.session.reload()

    def _films_changed(self, films: list[FilmRow]) -> None:
        self._last_refresh = time.monotonic()
        self.worklist.set_films(films, self.session.card_name())
        for action in self.decision_actions:  # in review mode 1-4 decide, and say so when they cannot
            action.setEnabled(bool(films))

    def _resume(self) -> None:
        """Once per worklist: the film the reader was on (unless another reader has it now), else the first unread
        one (that nobody else reads) in the shown order."""
        if self._resumed or not self.worklist.table.films:
            return
        self._resumed = True
        self._first = None
        wanted = self.session.remembered_film()
        if wanted is not None and wanted not in self.session.others() and self.worklist.select(wanted):
            return
        order = self.worklist.order() or self.worklist.table.films
        first = next((f for f in order if f.decision is None and not self.worklist.table.by_another(f)),
                     next((f for f in order if f.decision is None), order[0]))
        self._first = first.id
        self.worklist.select(first.id)

    def _most_suspicious_first(self) -> None:
        """The worklist opened on the first film found, before the others were analysed: once all are, the most
        suspicious unread film takes its place, unless the reader has moved or decided meanwhile (rows that
        arrive never move the reader while reading)."""
        first, self._first = self._first, None
        film = self.session.film_row(first)
        if film is None or self.session.chosen != first or film.decision is not None:
            return
        top = next((f for f in self.worklist.order() if f.decision is None), None)
        if top is not None and top.id != first:
            self.worklist.select(top.id)

    # ----- moving -----
    def show_worklist_film(self, film: FilmRow) -> None:
        """The reader chose a worklist film (key, click, decision): its note is in the field, and it opens."""
        try:
            self.session.choose(film)
        except NotSaved as exc:
            self.messages.error(str(exc))
        self.open_film(Path(film.info.path))
        self._decode_ahead()

    def step_film(self, step: int | str) -> None:
        """Next/previous/first/last film of the worklist, or of the study browser when there is none."""
        if self.worklist.table.films and self.worklist.isVisible():
            if not self.worklist.move(step) and step in (1, "last"):
                self.end_of_worklist()
            return
        paths = self.browser.instance_paths()
        if not paths:
            return
        record = self.session.record
        current = Path(record.path) if record else None
        index = paths.index(current) if current in paths else -1
        target = {"first": 0, "last": len(paths) - 1}.get(step) if isinstance(step, str) else index + step
        target = min(max(target, 0), len(paths) - 1)
        if target != index:
            self.browser.select(paths[target])
            self.open_film(paths[target])

    def next_unread(self) -> None:
        film = self.worklist.next_unread()
        if film is None:
            self.end_of_worklist()
        elif self.worklist.current() is None or film.id != self.worklist.current().id:
            self.worklist.select(film.id)

    def end_of_worklist(self) -> None:
        """Said in the status bar when there is no film to go on to."""
        self.messages.status(self.session.end_text(), 10000)

    def _decode_ahead(self) -> None:
        """Decode the next film of the worklist in the background, so that moving on is instant."""
        row = self.worklist.current_row()
        following = self.worklist.at(row + 1) if row >= 0 else None
        if following is not None:
            path, films = following.info.path, self.films
            worker = Worker(lambda: films.get(path))  # a cached film is only marked as recently used
            self._ahead.add(worker)  # a reference until it is done, or Python may collect it first
            worker.signals.finished.connect(self._ahead.discard)
            start(worker)

    def _film_shown(self, record, film: FilmRow | None) -> None:
        """The worklist row follows the film on screen: its own, or none (a film opened from elsewhere)."""
        current = self.worklist.current()
        if film is None and current is not None:
            self.worklist.clear_selection()
        elif film is not None and (current is None or current.id != film.id):
            self.worklist.select(film.id, emit=False)
        self.messages.clear_wait()  # the film it waited for is on screen: a decision is taken now
        self.messages.cursor("")  # the pixel value under the cursor was the last film's

    def save_marks(self, view) -> None:
        """Measurements and annotations are saved with the film on screen at once, and shown in every pane."""
        try:
            self.session.save_marks(view.marks)
        except Refused as refusal:
            self.messages.status(str(refusal), 6000)
            return
        except NotSaved as exc:
            self.messages.error(str(exc))
            return
        for pane in self.session.panes:
            if pane.view is not view:
                pane.view.set_marks(view.marks)

    # ----- deciding -----
    def decide(self, decision: str) -> None:
        """Record the reader's decision for the film on screen (committed at once) and go to the next."""
        film = self.session.film
        following = None
        if film is not None:  # on a shared store: the next unread film nobody else reads
            following = self.worklist.next_unread(film.id) if self.session.shared else \
                self.worklist.neighbour(film.id, 1)
            following = None if following is not None and following.id == film.id else following
        second_read = False
        try:
            try:
                film = self.session.decide(decision)
            except SecondRead as asked:  # another reader decided it: beside theirs only when the reader says so
                if not self.ask_second_read(asked):
                    self.messages.status(f"{Path(asked.film.info.path).name}: {asked.first.reader}'s decision left "
                                         "as it is; no second read saved", 6000)
                    return
                if self.session.film is None or self.session.film.id != asked.film.id:  # moved on while asked
                    raise Refused(f"{Path(asked.film.info.path).name} is no longer on screen; no second read was saved")
                film, second_read = self.session.decide(decision, second_read=True), True
        except (Refused, NotSaved) as refusal:
            self.messages.refused(refusal)
            return
        unnamed = "" if self.saved.reader() else " without a reader name: type yours under the decision buttons"
        made = "saved as a second read" if second_read else "saved"
        self.messages.status(f"{Path(film.info.path).name}: {decision} {made}{unnamed} (Ctrl+Z: undo)", 6000)
        if following is not None:
            self.worklist.select(following.id)
        else:
            self.session.load_note(self.session.film_row(film.id))
            self.end_of_worklist()

    def ask_second_read(self, asked: SecondRead) -> bool:
        """Whether the reader records their reading of a film another reader decided as a second read (asked once,
        No by default: their decision stays as it is)."""
        answer = QMessageBox.question(self.dialog_parent, "Second read", asked.question(),
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def undo_decision(self) -> None:
        """Withdraw the last decision of this session (kept in the history) and go back to its film."""
        try:
            film, film_id, withdrawn = self.session.undo()
        except (Refused, NotSaved) as refusal:
            self.messages.refused(refusal)
            return
        if film is not None and not self.worklist.select(film_id):
            self.session.load_note(film)
        name = Path(film.info.path).name if film else f"film {film_id}"
        self.messages.status(f"{name}: '{withdrawn.decision}' withdrawn; decide again", 6000)

    def export_report_dialog(self) -> None:
        if not self.session.films:
            self.messages.error("No worklist to report: Review > Review folder... first.")
            return
        from xrayviewer.gui.report_file import ask_report_path

        path = ask_report_path(self.dialog_parent, self.last_folder())
        if path:
            self.export_report(path)

    def export_report(self, path: Path) -> None:
        """The worklist's films, one row each (patient, study, each model's result, the decision, note, reader and
        time), as `xrayviewer report --csv` writes them, or as a PDF (.pdf) with a header (date, readers, counts,
        models and thresholds) as `xrayviewer report --pdf` writes it."""
        from xrayviewer.core.review.report import summary
        from xrayviewer.gui.report_file import write_report

        films = self.session.films
        try:
            write_report(path, films)
        except OSError as exc:
            self.messages.error(f"{path}: the report was not written: {exc.strerror or exc}")
            return
        done = summary(films)
        self.messages.status(f"Saved {path}: {films_text(done['films'])}, {done['reviewed']} reviewed", 10000)

    def ask_reader_name(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        name, ok = QInputDialog.getText(self.dialog_parent, "Reader", "Name saved with each decision:",
                                        text=self.saved.reader())
        if ok:
            self.saved.set_reader(name)
            self.worklist.reader.setText(self.saved.reader())
