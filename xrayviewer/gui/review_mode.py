"""Review mode: a folder becomes a worklist in the review store; the reader steps through it and decides.

Keys: Down/PgDn next film, Up/PgUp previous, Home/End first/last, U next unread, 1 normal, 2 pneumonia,
3 uncertain, 4 other (each decision is committed at once and moves on), Ctrl+Z withdraws the last decision,
N the note (Enter or Esc: back to the film). Without a worklist, Down/Up step through the study browser's films.
The film after the current one is decoded ahead.

A decision, note or mark always lands on the film on screen: `self.film` is the worklist film whose pixels are
shown (set when a film has loaded, never when one is only asked for), and a decision waits while another film is
still opening. The note field lives in review_notes.py.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog

from xrayviewer.core.review.store import FilmRow, ReviewStore, default_db_path
from xrayviewer.core.review.worklist import Worklist, film_path
from xrayviewer.gui.workers import Worker, start
from xrayviewer.gui.worklist_view import DECISION_KEYS, HIDDEN_BY_DEFAULT, WorklistView, films_text, primary_result

ROOTS_KEY = "worklist_roots"
CURRENT_KEY = "current_film"
COLUMNS_KEY = "worklist_hidden_columns"
REFRESH_S = 0.5  # while the worklist fills, rows are refreshed at most this often


def under(path: str, roots: list[Path]) -> bool:
    """Whether `path` is one of `roots` or lies inside one of them."""
    p = Path(path)
    return any(p == root or root in p.parents for root in roots)


class ReviewMixin:
    """The worklist dock, the review menu and keys, decisions, note drafts and the decode-ahead."""

    def _build_review(self, db: str | Path | None) -> None:
        self.db_path = Path(db) if db is not None else default_db_path()
        self.store: ReviewStore | None = None
        self.review_roots: list[Path] = []
        self.film: FilmRow | None = None  # the worklist film on screen (None: what is shown is not in it)
        self.decided: list[int] = []  # films decided in this session, the latest last (for undo)
        self._resumed = False  # the worklist has put its first film on screen
        self._last_refresh = 0.0
        self._ahead: set[Worker] = set()  # decode-ahead workers in flight
        self.worklist = WorklistView()
        self.worklist.show_store(self.db_path)
        self.worklist.filmChosen.connect(self.show_worklist_film)
        self.worklist.decisionRequested.connect(self.decide)
        self.worklist.columnsChanged.connect(lambda names: self._store_state(COLUMNS_KEY, json.dumps(names)))
        self._build_notes()
        self.worklist_dock = QDockWidget("Worklist", self)
        self.worklist_dock.setObjectName("worklist")
        self.worklist_dock.setWidget(self.worklist)
        self.worklist.setMinimumWidth(300)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.worklist_dock)
        self.tabifyDockWidget(self.findChild(QDockWidget, "study"), self.worklist_dock)

    def _build_review_menu(self) -> None:
        menu = self.menuBar().addMenu("&Review")
        self._action(menu, "Review folder...", self.review_folder_dialog, "Ctrl+R")
        moves = [("Next film", 1, ("Down", "PgDown")), ("Previous film", -1, ("Up", "PgUp")),
                 ("First film", "first", ("Home",)), ("Last film", "last", ("End",))]
        for text, step, keys in moves:
            action = self._action(menu, text, lambda _=False, s=step: self.step_film(s))
            action.setShortcuts([QKeySequence(k) for k in keys])
        self._action(menu, "Next unread film", self.next_unread, "U")
        unread = self._action(menu, "Unread films only", self.worklist.unread_only.setChecked, "Ctrl+U",
                              checkable=True)
        self.worklist.unread_only.toggled.connect(unread.setChecked)
        menu.addSeparator()
        self.decision_actions: list[QAction] = []
        for key, decision in DECISION_KEYS:
            action = self._action(menu, f"Decide: {decision}", lambda _=False, d=decision: self.decide(d), key)
            action.setEnabled(False)  # only with a worklist; else "1" is the viewport's 1:1
            self.decision_actions.append(action)
        self._action(menu, "Undo the last decision", self.undo_decision, QKeySequence.StandardKey.Undo)
        self._action(menu, "Note...", self.edit_note, "N")
        self._action(menu, "Set reader name...", self.ask_reader_name)

    # ----- the store and the worklist -----
    def open_store(self) -> ReviewStore:
        if self.store is None:
            self.store = ReviewStore(self.db_path)
            self.worklist.set_hidden_columns(json.loads(self.store.state(COLUMNS_KEY,
                                                                         json.dumps(HIDDEN_BY_DEFAULT))))
        return self.store

    def _store_state(self, key: str, value: str) -> None:
        if self.store is not None:
            self._saved("where the reader is", lambda: self.store.set_state(key, value))

    def _saved(self, what: str, write: Callable[[], object]) -> bool:
        """One write to the store; a failure (disk full, the file gone) is said in the banner, naming the file and
        what was not saved, and False is returned (the reader's screen stays as it was)."""
        try:
            write()
        except (sqlite3.Error, OSError) as exc:
            self.show_error(f"{self.db_path}: {what} was not saved: {exc}. Check the disk and the file's "
                            "permissions, then try again.")
            return False
        return True

    def resume_review(self) -> None:
        """At start: the last worklist from the store (when there is one), at the film the reader was on; without
        one, the study browser in front (a restored layout may have left the empty worklist there)."""
        roots = []
        if self.db_path.is_file():
            try:
                roots = json.loads(self.open_store().state(ROOTS_KEY, "[]"))
            except Exception as exc:  # noqa: BLE001 - a damaged store is reported, the viewer still starts
                self.show_error(str(exc))
        if not roots:
            self.findChild(QDockWidget, "study").raise_()
        else:
            self.show_worklist_dock()
            self.review_roots = [Path(r) for r in roots]
            self._resumed = False
            self.refresh_worklist()
            self._resume()

    def show_worklist_dock(self) -> None:
        """The worklist in front, the study browser as a tab behind it, wide enough for its shown columns
        (up to 40 % of the window, so that the film keeps the most room)."""
        study = self.findChild(QDockWidget, "study")
        if self.dockWidgetArea(self.worklist_dock) == self.dockWidgetArea(study) and \
                self.worklist_dock not in self.tabifiedDockWidgets(study):
            self.tabifyDockWidget(study, self.worklist_dock)
        self.worklist_dock.show()
        self.worklist_dock.raise_()
        wanted = min(self.worklist.columns_width(), int(self.width() * 0.4))
        if self.worklist_dock.width() < wanted:
            self.resizeDocks([self.worklist_dock], [wanted], Qt.Orientation.Horizontal)

    def review_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Review a folder of films", self._last_folder())
        if folder:
            self.review_paths([folder])

    def review_paths(self, paths: list[str | Path]) -> None:
        """Make `paths` the worklist: films already in the store show at once, the rest are analysed behind, and
        the first film is on screen as soon as one is known."""
        try:
            store = self.open_store()
        except Exception as exc:  # noqa: BLE001 - an unusable store is reported, the viewer goes on
            self.show_error(str(exc))
            return
        self.keep_note()
        self.review_roots = [film_path(p) for p in paths]
        store.set_state(ROOTS_KEY, json.dumps([str(r) for r in self.review_roots]))
        self.show_worklist_dock()
        self._resumed = False
        self.refresh_worklist()
        self._resume()
        model = self.active.settings.model
        worklist = Worklist(store, self.engine, [model])
        roots = list(self.review_roots)

        def work(worker: Worker) -> int:
            for _ in worklist.run_items(worklist.first(roots)):  # on screen before the rest are even listed
                worker.report_progress(1, 0)
            items = worklist.scan(roots)
            for done, _ in enumerate(worklist.run_items(items, lambda: worker.cancelled), 1):
                worker.report_progress(done, len(items))
            return len(items)

        self._run(work, self._worklist_filled, "Analysing the worklist...", pass_worker=True,
                  on_error=self._worklist_failed, on_progress=self._worklist_progress)

    def _worklist_failed(self, message: str) -> None:
        """Said where the count of reviewed films would be, and stays there: "0 of 0 reviewed" hid a failure."""
        self.worklist.progress.setText(f"The worklist could not be filled: {message}")
        self.worklist.progress.setToolTip(message)

    def _worklist_filled(self, count: int) -> None:
        self.refresh_worklist()
        self._resume()
        self.statusBar().showMessage(f"Worklist ready: {films_text(count)}", 8000)

    def _worklist_progress(self, done: int, total: int) -> None:
        if self.review_roots and (not self._resumed or time.monotonic() - self._last_refresh > REFRESH_S):
            self.refresh_worklist()
            self._resume()

    def refresh_worklist(self) -> None:
        """Reload the rows of the worklist's films from the store."""
        if self.store is None or not self.review_roots:
            return
        self._last_refresh = time.monotonic()
        films = [f for f in self.store.films() if under(f.info.path, self.review_roots)]
        self.worklist.set_films(films, self._card_name())
        for action in self.decision_actions:  # in review mode 1-4 decide, and say so when they cannot
            action.setEnabled(bool(films))
        if self.film is not None:
            self.film = self.worklist.film(self.film.id) or self.film

    def _resume(self) -> None:
        """Once per worklist: the film the reader was on, else the first unread one in the shown order."""
        if self._resumed or not self.worklist.table.films:
            return
        self._resumed = True
        wanted = self.store.state(CURRENT_KEY)
        if wanted and self.worklist.select(int(wanted)):
            return
        order = self.worklist.order() or self.worklist.table.films
        first = next((f for f in order if f.decision is None), order[0])
        self.worklist.select(first.id)

    def _card_name(self) -> str:
        try:
            return self.engine.model(self.active.settings.model).card.name
        except Exception:  # noqa: BLE001 - no usable model: the first stored result is shown
            return ""

    # ----- moving -----
    def show_worklist_film(self, film: FilmRow) -> None:
        """The reader chose a worklist film (key, click, decision): its note is in the field, and it opens."""
        self.load_note(film)
        self._store_state(CURRENT_KEY, str(film.id))
        self.open_image(Path(film.info.path))
        self._decode_ahead()

    def step_film(self, step: int | str) -> None:
        """Next/previous/first/last film of the worklist, or of the study browser when there is none."""
        if self.worklist.table.films and self.worklist_dock.isVisible():
            if not self.worklist.move(step) and step in (1, "last"):
                self.end_of_worklist()
            return
        paths = self.browser.instance_paths()
        if not paths:
            return
        current = Path(self.record.path) if self.record else None
        index = paths.index(current) if current in paths else -1
        target = {"first": 0, "last": len(paths) - 1}.get(step) if isinstance(step, str) else index + step
        target = min(max(target, 0), len(paths) - 1)
        if target != index:
            self.browser.select(paths[target])
            self.open_image(paths[target])

    def next_unread(self) -> None:
        film = self.worklist.next_unread()
        if film is None:
            self.end_of_worklist()
        elif self.worklist.current() is None or film.id != self.worklist.current().id:
            self.worklist.select(film.id)

    def end_of_worklist(self) -> None:
        """Said in the status bar when there is no film to go on to."""
        films = self.worklist.table.films
        unread = sum(f.decision is None for f in films)
        text = (f"End of the worklist: all {films_text(len(films))} reviewed" if not unread else
                f"End of the worklist: {unread} of {films_text(len(films))} still unread (U: next unread)")
        self.statusBar().showMessage(text, 10000)

    def _decode_ahead(self) -> None:
        """Decode the next film of the worklist in the background, so that moving on is instant."""
        order = self.worklist.order()
        row = self.worklist.current_row()
        if 0 <= row < len(order) - 1:
            path = order[row + 1].info.path
            worker = Worker(lambda: self.films.get(path))  # a cached film is only marked as recently used
            self._ahead.add(worker)  # a reference until it is done, or Python may collect it first
            worker.signals.finished.connect(self._ahead.discard)
            start(worker)

    def _image_loaded(self, loaded, generation: int | None = None) -> None:
        """The film on screen decides which worklist film decisions, notes and marks go to: the one with its
        path, or none (a film opened from elsewhere), whatever row was highlighted before."""
        super()._image_loaded(loaded, generation)
        if self.record is not loaded[0]:
            return  # a slower, earlier read: not shown
        self.cursor_label_text("")  # the pixel value under the cursor was the last film's
        if self.statusBar().currentMessage().startswith("Wait:"):
            self.statusBar().clearMessage()  # the film it waited for is on screen: a decision is taken now
        path = Path(self.record.path)
        film = next((f for f in self.worklist.table.films if Path(f.info.path) == path), None)
        self.film = film
        current = self.worklist.current()
        if film is None and current is not None:
            self.worklist.clear_selection()
            self.load_note(None)
        elif film is not None and (current is None or current.id != film.id):
            self.worklist.select(film.id, emit=False)
            self.load_note(film)
            self._store_state(CURRENT_KEY, str(film.id))
        if film is not None:  # set_record cleared the last film's marks
            marks = self.store.marks(film.id)
            for pane in self.panes:
                pane.view.set_marks(marks)

    def _film_on_screen(self) -> FilmRow | None:
        """The worklist film whose pixels are on screen, if any."""
        return self.film

    def save_marks(self, view) -> None:
        """Measurements and annotations are saved with the film's review at once."""
        film = self._film_on_screen()
        if film is None:
            self.statusBar().showMessage("Marks are saved with a worklist film's review; this film is not in one "
                                         "(Review > Review folder...)", 6000)
            return
        if not self._saved("the marks", lambda: self.store.set_marks(film.id, view.marks)):
            return
        for pane in self.panes:
            if pane.view is not view:
                pane.view.set_marks(view.marks)

    # ----- deciding -----
    def decide(self, decision: str) -> None:
        """Record the reader's decision for the film on screen (committed at once) and go to the next."""
        film = self._film_on_screen()
        if film is None or self.store is None:
            self.show_error("The film on screen is not in the worklist: no decision was saved. Choose a film in "
                            "the worklist (or Review > Review folder...) first.")
            return
        chosen = self.worklist.current()
        if chosen is None or chosen.id != film.id:
            self.statusBar().showMessage(f"Wait: {Path(chosen.info.path).name if chosen else 'the film'} is still "
                                         "opening; no decision was saved (decide again once it is on screen)", 5000)
            return
        following = self.worklist.neighbour(film.id, 1)
        note, reader, shown = self.worklist.note.text(), self.reader_name(), self._ai_shown(film)
        if not self._saved(f"the decision '{decision}'",
                           lambda: self.store.decide(film.id, decision, note, reader, shown)):
            return
        self.decided.append(film.id)
        self.statusBar().showMessage(f"{Path(film.info.path).name}: {decision} saved (Ctrl+Z: undo)", 6000)
        self.refresh_worklist()
        if following is not None:
            self.worklist.select(following.id)
        else:
            self.load_note(self.worklist.film(film.id))
            self.end_of_worklist()

    def undo_decision(self) -> None:
        """Withdraw the last decision of this session (kept in the history) and go back to its film."""
        if not self.decided or self.store is None:
            self.statusBar().showMessage("No decision of this session to undo", 5000)
            return
        film_id = self.decided.pop()
        withdrawn = None

        def withdraw() -> None:
            nonlocal withdrawn
            withdrawn = self.store.withdraw(film_id)
            if withdrawn is not None and withdrawn.note:
                self.store.set_draft(film_id, withdrawn.note)

        if not self._saved("the undo", withdraw) or withdrawn is None:
            return
        self.note_film = None  # the field is reloaded from the store, not kept over the draft
        self.refresh_worklist()
        film = self.worklist.film(film_id)
        if film is not None and not self.worklist.select(film_id):
            self.load_note(film)
        name = Path(film.info.path).name if film else f"film {film_id}"
        self.statusBar().showMessage(f"{name}: '{withdrawn.decision}' withdrawn; decide again", 6000)

    def _ai_shown(self, film: FilmRow) -> dict:
        """What the AI showed on screen when the reader decided: the panes' results; when none was on screen yet,
        the stored result marked `on_screen` false."""
        shown = {}
        if self.record is not None and Path(self.record.path) == Path(film.info.path):
            for pane in self.visible_panes():
                a = pane.analysis
                if a is not None:
                    shown[a.model] = {"probability": a.probability, "label": a.label, "threshold": a.threshold,
                                      "refused": [str(r) for r in a.refused], "out_of_scope": a.out_of_scope,
                                      "method": a.method, "on_screen": True}
        if not shown and (result := primary_result(film, self._card_name())) is not None:
            shown[result.model] = {**result.as_dict(), "on_screen": False}
        return shown

    def reader_name(self) -> str:
        name = self.saved.reader()
        if not name:
            try:
                name = getpass.getuser()
            except Exception:  # noqa: BLE001 - no login name on this system
                name = ""
        return name

    def ask_reader_name(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        name, ok = QInputDialog.getText(self, "Reader", "Name saved with each decision:", text=self.reader_name())
        if ok:
            self.saved.set_reader(name)
