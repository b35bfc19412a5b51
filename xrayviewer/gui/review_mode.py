"""Review mode: a folder becomes a worklist in the review store; the reader steps through it and decides.

Keys: Down/PgDn next film, Up/PgUp previous, Home/End first/last, 1 normal, 2 pneumonia, 3 uncertain,
4 other (each decision is committed at once and moves on), N the note. Without a worklist, Down/Up step
through the study browser's films. The film after the current one is decoded ahead.
"""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog

from xrayviewer.core.review_store import FilmRow, ReviewStore, default_db_path
from xrayviewer.core.worklist import Worklist, film_path
from xrayviewer.gui.workers import Worker, start
from xrayviewer.gui.worklist_view import DECISION_KEYS, WorklistView, primary_result

ROOTS_KEY = "worklist_roots"
CURRENT_KEY = "current_film"
REFRESH_S = 0.5  # while the worklist fills, rows are refreshed at most this often


def under(path: str, roots: list[Path]) -> bool:
    """Whether `path` is one of `roots` or lies inside one of them."""
    p = Path(path)
    return any(p == root or root in p.parents for root in roots)


class ReviewMixin:
    """The worklist dock, the review menu and keys, decisions and the decode-ahead."""

    def _build_review(self, db: str | Path | None) -> None:
        self.db_path = Path(db) if db is not None else default_db_path()
        self.store: ReviewStore | None = None
        self.review_roots: list[Path] = []
        self.film: FilmRow | None = None  # the worklist film on screen
        self._last_refresh = 0.0
        self._ahead: set[Worker] = set()  # decode-ahead workers in flight
        self.worklist = WorklistView()
        self.worklist.filmChosen.connect(self.show_worklist_film)
        self.worklist.decisionRequested.connect(self.decide)
        self.worklist.noteEdited.connect(self.save_note)
        self.worklist_dock = QDockWidget("Worklist", self)
        self.worklist_dock.setObjectName("worklist")
        self.worklist_dock.setWidget(self.worklist)
        self.worklist.setMinimumWidth(420)
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
        menu.addSeparator()
        self.decision_actions: list[QAction] = []
        for key, decision in DECISION_KEYS:
            action = self._action(menu, f"Decide: {decision}", lambda _=False, d=decision: self.decide(d), key)
            action.setEnabled(False)  # only with a worklist film on screen; else "1" is the viewport's 1:1
            self.decision_actions.append(action)
        self._action(menu, "Note...", self.worklist.note.setFocus, "N")
        self._action(menu, "Set reader name...", self.ask_reader_name)

    # ----- the store and the worklist -----
    def open_store(self) -> ReviewStore:
        if self.store is None:
            self.store = ReviewStore(self.db_path)
        return self.store

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
            self.refresh_worklist()
            self._resume()

    def show_worklist_dock(self) -> None:
        """The worklist in front, the study browser as a tab behind it."""
        study = self.findChild(QDockWidget, "study")
        if self.dockWidgetArea(self.worklist_dock) == self.dockWidgetArea(study) and \
                self.worklist_dock not in self.tabifiedDockWidgets(study):
            self.tabifyDockWidget(study, self.worklist_dock)
        self.worklist_dock.show()
        self.worklist_dock.raise_()

    def review_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Review a folder of films", self._last_folder())
        if folder:
            self.review_paths([folder])

    def review_paths(self, paths: list[str | Path]) -> None:
        """Make `paths` the worklist: films already in the store show at once, the rest are analysed behind."""
        store = self.open_store()
        self.review_roots = [film_path(p) for p in paths]
        store.set_state(ROOTS_KEY, json.dumps([str(r) for r in self.review_roots]))
        self.show_worklist_dock()
        self.refresh_worklist()
        self._resume(only_saved=True)  # the top of the list is known once every film is analysed
        model = self.active.settings.model
        worklist = Worklist(store, self.engine, [model])
        roots = list(self.review_roots)

        def work(worker: Worker) -> int:
            items = worklist.scan(roots)
            for done, _ in enumerate(worklist.run_items(items, lambda: worker.cancelled), 1):
                worker.signals.progress.emit(done, len(items))
            return len(items)

        self._run(work, self._worklist_filled, "Analysing the worklist...", pass_worker=True)

    def _worklist_filled(self, count: int) -> None:
        self.refresh_worklist()
        self._resume()
        self.statusBar().showMessage(f"Worklist ready: {count} films", 8000)

    def _progress(self, done: int, total: int) -> None:
        super()._progress(done, total)
        if self.review_roots and time.monotonic() - self._last_refresh > REFRESH_S:
            self.refresh_worklist()
            self._resume(only_saved=True)

    def refresh_worklist(self) -> None:
        """Reload the rows of the worklist's films from the store."""
        if self.store is None or not self.review_roots:
            return
        self._last_refresh = time.monotonic()
        films = [f for f in self.store.films() if under(f.info.path, self.review_roots)]
        self.worklist.set_films(films, self._card_name())
        if self.film is not None:
            self.film = next((f for f in films if f.id == self.film.id), self.film)

    def _resume(self, only_saved: bool = False) -> None:
        """Select the film the reader was on, else (unless `only_saved`) the first unread one in the shown order."""
        if self.worklist.current() is not None or not self.worklist.table.films:
            return
        wanted = self.store.state(CURRENT_KEY)
        if (wanted and self.worklist.select(int(wanted))) or only_saved:
            return
        order = self.worklist.order()
        first = next((f for f in order if f.decision is None), order[0])
        self.worklist.select(first.id)

    def _card_name(self) -> str:
        try:
            return self.engine.model(self.active.settings.model).card.name
        except Exception:  # noqa: BLE001 - no usable model: the first stored result is shown
            return ""

    # ----- moving -----
    def show_worklist_film(self, film: FilmRow) -> None:
        self.film = film
        self.store.set_state(CURRENT_KEY, str(film.id))
        for action in self.decision_actions:
            action.setEnabled(True)
        self.open_image(Path(film.info.path))
        self._decode_ahead()

    def step_film(self, step: int | str) -> None:
        """Next/previous/first/last film of the worklist, or of the study browser when there is none."""
        if self.worklist.table.films and self.worklist_dock.isVisible():
            self.worklist.move(step)
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

    def _decode_ahead(self) -> None:
        """Decode the next film of the worklist in the background, so that moving on is instant."""
        order = self.worklist.order()
        row = self.worklist.current_row()
        if 0 <= row < len(order) - 1:
            path = order[row + 1].info.path
            worker = Worker(lambda: self.films.get(path))  # a cached film is only marked as recently used
            self._ahead.add(worker)  # a reference until it is done, or Python may collect it first
            worker.signals.finished.connect(lambda w=worker: self._ahead.discard(w))
            start(worker)

    def _image_loaded(self, loaded, generation: int | None = None) -> None:
        """A worklist film comes back with the measurements and annotations saved with its review."""
        super()._image_loaded(loaded, generation)
        film = self._film_on_screen()
        if film is not None:
            marks = self.store.marks(film.id)
            for pane in self.panes:
                pane.view.set_marks(marks)

    def _film_on_screen(self) -> FilmRow | None:
        """The worklist film whose file is on screen, if any."""
        if self.film is None or self.record is None or Path(self.record.path) != Path(self.film.info.path):
            return None
        return self.film

    def save_marks(self, view) -> None:
        """Measurements and annotations are saved with the film's review at once."""
        film = self._film_on_screen()
        if film is None:
            self.statusBar().showMessage("Marks are saved with a worklist film's review; this film is not in one "
                                         "(Review > Review folder...)", 6000)
            return
        self.store.set_marks(film.id, view.marks)
        for pane in self.panes:
            if pane.view is not view:
                pane.view.set_marks(view.marks)

    # ----- deciding -----
    def decide(self, decision: str) -> None:
        """Record the reader's decision for the film on screen (committed at once) and go to the next."""
        film = self.film
        if film is None or self.store is None:
            self.show_error("No worklist film on screen: use Review > Review folder... first.")
            return
        self.store.decide(film.id, decision, self.worklist.note.text(), self.reader_name(), self._ai_shown(film))
        self.statusBar().showMessage(f"{Path(film.info.path).name}: {decision} saved", 4000)
        self.refresh_worklist()
        self.worklist.move(1)

    def save_note(self, note: str) -> None:
        """Enter in the note field: a decided film keeps its decision with the new note; else it waits."""
        film = self.film
        if film is None or film.decision is None:
            self.statusBar().showMessage("The note is saved with the decision (1-4)", 5000)
            return
        self.store.decide(film.id, film.decision.decision, note, self.reader_name(), self._ai_shown(film))
        self.refresh_worklist()
        self.statusBar().showMessage("Note saved", 4000)

    def _ai_shown(self, film: FilmRow) -> dict:
        """What the AI said on screen when the reader decided: the panes' results, else the stored one."""
        shown = {}
        if self.record is not None and Path(self.record.path) == Path(film.info.path):
            for pane in self.visible_panes():
                a = pane.analysis
                if a is not None:
                    shown[a.model] = {"probability": a.probability, "label": a.label, "threshold": a.threshold,
                                      "refused": [str(r) for r in a.refused], "out_of_scope": a.out_of_scope,
                                      "method": a.method}
        if not shown and (result := primary_result(film, self._card_name())) is not None:
            shown[result.model] = result.as_dict()
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
