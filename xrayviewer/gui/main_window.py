"""The main window: the composition root. It builds the reading session and the parts, gives each its collaborators,
and lays them out; the behaviour lives in the parts, each in its own module:

- core/review/session.py: the reading session (film on screen, panes, worklist, decisions, undo, note drafts)
- messages.py: banner, status bar messages, cursor label; background.py: Tasks (workers, progress, Cancel)
- analysis_control.py: AnalysisPart, running the models per pane and showing the results
- compare.py: PanesPart, the panes' splitter, active pane, side by side, synchronisation, window presets
- opening.py: OpeningPart, dialogs, demo, drag and drop, reading a film and putting it on screen
- reading_tools.py: ReadingToolbar (tools, orientation, heatmap, cine, export); reading_view.py draws the marks
- review_mode.py: ReviewPart, the worklist, decisions and the keys that move through films; review_notes.py: the note
- export_actions.py: ExportActions, PNG, DICOM, send to PACS, study export, tags and model card
- pacs_dock.py: PacsPart, the PACS query dock and nodes dialog; docks.py: Docks, the left docks as tabs
- persistence.py: Persistence, what is remembered between runs; menus.py: Menus, the menu bar and help texts
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMainWindow, QScrollArea, QVBoxLayout, QWidget

from xrayviewer.core.analysis.engine import engine_for
from xrayviewer.core.reading.film_cache import FilmCache
from xrayviewer.core.review.session import AnalysisSettings, ReadingSession
from xrayviewer.gui.analysis_control import AnalysisPart, Pane, bar_top_of, caption_of
from xrayviewer.gui.background import Tasks
from xrayviewer.gui.browser import StudyBrowser
from xrayviewer.gui.compare import PanesPart, second_settings
from xrayviewer.gui.docks import Docks
from xrayviewer.gui.export_actions import ExportActions
from xrayviewer.gui.menus import ABOUT, SHORTCUTS, Menus
from xrayviewer.gui.messages import Messages, StatusBar
from xrayviewer.gui.opening import OpeningPart
from xrayviewer.gui.pacs_dock import PacsPart
from xrayviewer.gui.panels import ControlPanel
from xrayviewer.gui.persistence import Persistence
from xrayviewer.gui.reading_tools import ReadingToolbar
from xrayviewer.gui.reading_view import ReadingViewport
from xrayviewer.gui.review_mode import ReviewPart
from xrayviewer.gui.settings import Settings

__all__ = ["ABOUT", "SHORTCUTS", "MainWindow", "Pane", "bar_top_of", "caption_of"]


class MainWindow(QMainWindow):
    """Builds the parts and lays them out. Its attributes name the parts (and, for tests, benchmarks and the
    command line, the few of their members they use); it holds no behaviour of its own."""

    def __init__(self, provider: str | None = None, models: list[str] | None = None,
                 db: str | Path | None = None) -> None:
        """`provider` from the command line wins over the saved one (None: the saved one, else auto);
        `db`: the review store (default: $XRAYVIEWER_DB, else the user's data folder)."""
        super().__init__()
        from xrayviewer.models import available

        self.setWindowTitle("XRay Viewer - research use only, not a diagnosis")
        self.setAcceptDrops(True)
        self.saved = saved = Settings()
        self.models = models if models is not None else available()
        first = AnalysisSettings(model=self.models[0] if self.models else "")
        panes = [Pane(first, view=ReadingViewport()), Pane(second_settings(first, self.models),
                                                            view=ReadingViewport())]
        panes[1].style = replace(panes[1].style, colormap="inferno")
        self.session = session = ReadingSession(engine_for(saved.provider(provider)), panes, db)
        self.films = FilmCache()

        # the parts
        self.setStatusBar(StatusBar())  # a long message ends in '...' before the labels, whole in its tooltip
        self.messages = messages = Messages(self.statusBar())
        self.tasks = tasks = Tasks(messages.error, self)
        self.panel = ControlPanel(self.models)
        self.browser = StudyBrowser()
        self.docks = Docks(self)
        self.docks.add("Study", "study", self.browser)  # the first on the left: the others are tabs beside it
        self.persistence = Persistence(saved, session, self.panel, self)
        self.analysis = AnalysisPart(session, self.panel, tasks, saved, messages, saved.last_folder, self)
        self.pane_layout = PanesPart(session, self.panel, self.analysis, saved, self)
        self.opening = OpeningPart(session, self.browser, self.films, tasks, self.analysis, self.panel,
                                   self.persistence.remember, saved.last_folder, self.setWindowTitle, messages, self)
        self.persistence.openRequested.connect(self.opening.open_paths)
        self.review = ReviewPart(session, tasks, saved, self.films, self.browser, self.opening.open_image,
                                 self.docks, saved.last_folder, messages, self)
        self.exports = ExportActions(session, tasks, saved, self.browser, messages, self)
        self.panel.cardRequested.connect(self.exports.show_model_card)
        self.pacs = PacsPart(session, tasks, self.review.review_paths, messages, self.docks, self)
        self.toolbar = ReadingToolbar(session, self.opening, tasks, self.panel, self.review.review_folder_dialog,
                                      self.exports.export_view, self.exports.export_dicom)
        for pane in panes:
            pane.view.cursorInfo.connect(messages.cursor)
            pane.view.marksChanged.connect(lambda p=pane: self.review.save_marks(p.view))
        self._lay_out()
        self.menus = Menus(self.menuBar(), self, session, self.opening, self.exports, self.pacs, self.pane_layout,
                           self.toolbar, self.review, self.persistence.recent_menu, self.close)
        self._name_members()

        # the start
        self.persistence.restore(self.models, self.menus.compare_action)
        for pane in panes:
            pane.view.set_style(pane.style)
        self.pane_layout.set_active(panes[0])
        if not self.models:
            messages.error("No shipped model is installed: open a contract .onnx file from the model list.")
        if not self.review.resume_review():
            self.docks.raise_study()

    def _lay_out(self) -> None:
        """The banner over the panes in the middle, the analysis panel on the right (the parts' docks are on the
        left), the toolbar, the status bar's labels, progress and Cancel."""
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.messages.banner)
        column.addWidget(self.review.watch.banner)  # a shared store's server unreachable: until it is back
        column.addWidget(self.pane_layout.views, 1)
        self.setCentralWidget(central)
        scroll = QScrollArea()  # long reasons wrap, and the panel scrolls down rather than clipping them
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # a fixed width: a long result wraps inside the panel instead of widening the dock and moving the film
        scroll.setFixedWidth(self.panel.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        self.docks.add("Analysis", "analysis", scroll, Qt.DockWidgetArea.RightDockWidgetArea)
        self.addToolBar(self.toolbar)
        bar = self.statusBar()
        bar.addWidget(self.messages.cursor_label, 1)
        for widget in (self.tasks.busy_label, self.tasks.progress, self.tasks.cancel_button):
            bar.addPermanentWidget(widget)
        bar.addPermanentWidget(QLabel("Research use only - not a diagnosis"))

    def _name_members(self) -> None:
        """The parts' members that tests, benchmarks and the command line reach through the window."""
        self.analysisShown = self.analysis.analysisShown  # every pane with a film has its analysis on screen
        self.errorShown, self.show_error = self.messages.errorShown, self.messages.error
        self.banner, self.cursor_label = self.messages.banner, self.messages.cursor_label
        self.worklist, self.worklist_dock = self.review.worklist, self.review.dock
        self.review_paths, self.decide = self.review.review_paths, self.review.decide
        self.open_paths, self.open_image, self.open_demo = self.opening.open_paths, self.opening.open_image, \
            self.opening.open_demo
        exports = self.exports
        self.export_view, self.export_dicom, self.reading = exports.export_view, exports.export_dicom, exports.reading
        self.show_tags, self.show_model_card, self.send_to_pacs = exports.show_tags, exports.show_model_card, \
            exports.send_to_pacs
        self.show_pacs_dock, self.show_pacs_nodes = self.pacs.show_dock, self.pacs.show_nodes
        self.set_tool, self.frame, self.cine_action = self.toolbar.set_tool, self.toolbar.frame, \
            self.toolbar.cine_action
        self.compare_action, self.sync_action = self.menus.compare_action, self.menus.sync_action
        self.recent_menu, self.cancel_work = self.persistence.recent_menu, self.tasks.cancel
        self.visible_panes, self._style_changed = self.analysis.visible_panes, self.analysis._style_changed

    # ----- the session's state and the parts' members that change, read through the window -----
    record = property(lambda self: self.session.record)
    engine = property(lambda self: self.session.engine)
    store = property(lambda self: self.session.store)
    film = property(lambda self: self.session.film)
    panes = property(lambda self: self.session.panes)
    active = property(lambda self: self.session.active)
    load_generation = property(lambda self: self.session.generation)
    workers = property(lambda self: self.tasks.workers)
    _ahead = property(lambda self: self.review._ahead)
    cine_frames = property(lambda self: self.toolbar.cine_frames)
    pacs_query = property(lambda self: self.pacs.query)
    pacs_nodes_dialog = property(lambda self: self.pacs.nodes_dialog)

    # ----- Qt delivers these to the window itself -----
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        self.opening.drop(event)
