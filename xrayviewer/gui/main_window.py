"""The main window: builds the widgets and wires them; each concern lives in its own mixin module.

- menus.py: menu bar, shortcuts and about texts
- opening.py: dialogs, demo, drag and drop, reading a film in the background
- analysis_control.py: running the models per pane and showing the results
- compare.py: active pane, side-by-side layout, synchronisation, window presets
- export_actions.py: PNG and study export, tags and model card dialogs
- persistence.py: what is remembered between runs
- review_mode.py: the worklist, decisions and the keys that move through films
- review_notes.py: the worklist's note field and its drafts
- reading_tools.py: the toolbar (tools, orientation, heatmap, cine, export); reading_view.py draws the marks
- background.py: worker start, progress and cancel
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from xrayviewer.core.analysis.engine import engine_for
from xrayviewer.core.reading.film_cache import FilmCache
from xrayviewer.core.review.session import AnalysisSettings, ReadingSession
from xrayviewer.gui.analysis_control import AnalysisPart, Pane, bar_top_of, caption_of
from xrayviewer.gui.background import Tasks
from xrayviewer.gui.browser import StudyBrowser
from xrayviewer.gui.compare import PanesPart, second_settings
from xrayviewer.gui.export_actions import ExportActions
from xrayviewer.gui.menus import ABOUT, SHORTCUTS, MenusMixin
from xrayviewer.gui.opening import OpeningPart
from xrayviewer.gui.pacs_dock import PacsMixin
from xrayviewer.gui.panels import ControlPanel
from xrayviewer.gui.persistence import PersistenceMixin
from xrayviewer.gui.reading_tools import ReadingToolbar
from xrayviewer.gui.reading_view import ReadingViewport
from xrayviewer.gui.messages import Messages
from xrayviewer.gui.review_mode import ReviewPart
from xrayviewer.gui.settings import Settings
from xrayviewer.gui.workers import Worker

__all__ = ["ABOUT", "SHORTCUTS", "MainWindow", "Pane", "bar_top_of", "caption_of"]


class MainWindow(MenusMixin, PacsMixin, PersistenceMixin, QMainWindow):

    def __init__(self, provider: str | None = None, models: list[str] | None = None,
                 db: str | Path | None = None) -> None:
        """`provider` from the command line wins over the saved one (None: the saved one, else auto);
        `db`: the review store (default: $XRAYVIEWER_DB, else the user's data folder)."""
        super().__init__()
        from xrayviewer.models import available

        self.setWindowTitle("XRay Viewer - research use only, not a diagnosis")
        self.setAcceptDrops(True)
        self.saved = Settings()
        self.models = models if models is not None else available()
        self.messages = Messages(self.statusBar())
        self.show_error, self.errorShown = self.messages.error, self.messages.errorShown
        self.tasks = Tasks(self.show_error)
        self._run, self.cancel_work = self.tasks.run, self.tasks.cancel
        self.films = FilmCache()
        first = AnalysisSettings(model=self.models[0] if self.models else "")
        panes = [Pane(first, view=ReadingViewport()), Pane(second_settings(first, self.models), view=ReadingViewport())]
        panes[1].style = replace(panes[1].style, colormap="inferno")
        self.session = ReadingSession(engine_for(self.saved.provider(provider)), panes, db)
        self.panel = ControlPanel(self.models)
        self.analysis = AnalysisPart(self.session, self.panel, self.tasks, self.saved, self.messages,
                                     self.saved.last_folder, self)
        self.analysisShown = self.analysis.analysisShown  # every pane with a film has its analysis on screen
        self.analyze, self.analyze_all = self.analysis.analyze, self.analysis.analyze_all
        self.visible_panes, self._style_changed = self.analysis.visible_panes, self.analysis._style_changed
        self.pane_layout = PanesPart(self.session, self.panel, self.analysis, self.saved)
        layout = self.pane_layout
        self.set_active, self.set_compare, self.apply_preset = layout.set_active, layout.set_compare, layout.apply_preset
        self._build_views()
        self._build_docks()
        self.opening = OpeningPart(self.session, self.browser, self.films, self.tasks, self.analysis, self.panel,
                                   self._remember, self.saved.last_folder, self.setWindowTitle, self.messages, self)
        self.open_paths, self.open_image, self.open_demo = self.opening.open_paths, self.opening.open_image, \
            self.opening.open_demo
        self.review = ReviewPart(self.session, self.tasks, self.saved, self.films, self.browser,
                                 self.opening.open_image, self.show_worklist_dock, self.saved.last_folder,
                                 self.messages, self)
        self.worklist, self.review_paths, self.decide = self.review.worklist, self.review.review_paths, \
            self.review.decide
        self._build_worklist_dock()
        self._build_status()
        self.exports = exports = ExportActions(self.session, self.tasks, self.saved, self.browser, self.messages, self)
        self.export_view, self.export_dicom, self.export_study = exports.export_view, exports.export_dicom, \
            exports.export_study
        self.send_to_pacs, self.reading, self.show_tags = exports.send_to_pacs, exports.reading, exports.show_tags
        self.panel.cardRequested.connect(exports.show_model_card)
        self.show_model_card = exports.show_model_card
        self.toolbar = ReadingToolbar(self.session, self.opening, self.tasks, self.panel,
                                      self.review.review_folder_dialog, exports.export_view, exports.export_dicom)
        self.addToolBar(self.toolbar)
        self.set_tool, self.frame, self.cine_action = self.toolbar.set_tool, self.toolbar.frame, \
            self.toolbar.cine_action
        self._build_menus()
        self.review.build_menu(self.menuBar().addMenu("&Review"))
        self._restore_settings()
        for pane in self.panes:
            pane.view.set_style(pane.style)
        self.set_active(self.panes[0])
        if not self.models:
            self.show_error("No shipped model is installed: open a contract .onnx file from the model list.")
        if not self.review.resume_review():
            self.findChild(QDockWidget, "study").raise_()  # a restored layout may have left the empty worklist there

    # ----- the session's state, for the mixins not yet turned into parts, tests and benchmarks -----
    record = property(lambda self: self.session.record)
    model_display = property(lambda self: self.session.display)
    engine = property(lambda self: self.session.engine)
    store = property(lambda self: self.session.store)
    film = property(lambda self: self.session.film)
    panes = property(lambda self: self.session.panes)
    active = property(lambda self: self.session.active)
    load_generation = property(lambda self: self.session.generation)
    _ahead = property(lambda self: self.review._ahead)
    cine_frames = property(lambda self: self.toolbar.cine_frames)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        self.opening.drop(event)

    def _build_worklist_dock(self) -> None:
        self.worklist_dock = QDockWidget("Worklist", self)
        self.worklist_dock.setObjectName("worklist")
        self.worklist_dock.setWidget(self.worklist)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.worklist_dock)
        self.tabifyDockWidget(self.findChild(QDockWidget, "study"), self.worklist_dock)

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

    def _build_views(self) -> None:
        for pane in self.panes:
            pane.view.cursorInfo.connect(self.messages.cursor)
            pane.view.marksChanged.connect(lambda p=pane: self.review.save_marks(p.view))
        self.banner = self.messages.banner
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.banner)
        cl.addWidget(self.pane_layout.views, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.browser = StudyBrowser()
        left = QDockWidget("Study", self)
        left.setObjectName("study")
        left.setWidget(self.browser)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, left)
        right = QDockWidget("Analysis", self)
        right.setObjectName("analysis")
        scroll = QScrollArea()  # long reasons wrap, and the panel scrolls down rather than clipping them
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # a fixed width: a long result wraps inside the panel instead of widening the dock and moving the film
        scroll.setFixedWidth(self.panel.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        right.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, right)

    @property
    def workers(self) -> set[Worker]:
        """The work in flight (tests and benchmarks wait for it to end)."""
        return self.tasks.workers

    def _build_status(self) -> None:
        self.cursor_label, self.cursor_label_text = self.messages.cursor_label, self.messages.cursor
        self.statusBar().addWidget(self.cursor_label, 1)
        for widget in (self.tasks.busy_label, self.tasks.progress, self.tasks.cancel_button):
            self.statusBar().addPermanentWidget(widget)
        self.statusBar().addPermanentWidget(QLabel("Research use only - not a diagnosis"))
