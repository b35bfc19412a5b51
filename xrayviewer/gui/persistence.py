"""What the window remembers between runs (through gui.settings): the recent list, the analysis choices, the
geometry and the docks, side by side."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow, QMenu

from xrayviewer.core.review.session import ReadingSession
from xrayviewer.gui.menus import add_action
from xrayviewer.gui.panels import ControlPanel
from xrayviewer.gui.settings import Settings


class Persistence(QObject):
    """Reads the remembered state at start and writes it back as it changes and when the window closes; owns the
    Recent menu (an entry chosen is `openRequested`). Collaborators: `settings`, the session (the panes' choices),
    the control `panel`; a window-frame part: it saves `window`'s geometry and docks."""

    openRequested = Signal(list)  # a Recent entry was chosen: [path]

    def __init__(self, settings: Settings, session: ReadingSession, panel: ControlPanel, window: QMainWindow) -> None:
        super().__init__(window)
        self.saved, self.session, self.panel, self.window = settings, session, panel, window
        self.recent_menu = QMenu("Recent", window)
        window.installEventFilter(self)
        self.refresh_recent()

    def remember(self, path: Path) -> None:
        """A file or folder that opened: at the top of Recent."""
        self.saved.remember(path)
        self.refresh_recent()

    def refresh_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.saved.recent():
            add_action(self.recent_menu, self.window, p, lambda _=False, p=p: self.openRequested.emit([p]))

    def restore(self, models: list[str], compare_action: QAction) -> None:
        """The first pane's model, method and style, the provider in use, the geometry, side by side."""
        first, saved = self.session.panes[0], self.saved
        model = saved.model(models)
        if model:
            first.settings = replace(first.settings, model=model)
        first.settings = replace(first.settings, method=saved.method())
        first.style = saved.style()
        self.panel.provider.blockSignals(True)  # showing the provider in use is no choice to save
        self.panel.provider.setCurrentText(self.session.engine.provider)
        self.panel.provider.blockSignals(False)
        geometry = saved.geometry()
        if geometry is not None:
            self.window.restoreGeometry(geometry[0])
            self.window.restoreState(geometry[1])
        if saved.compare():
            compare_action.setChecked(True)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self.window and event.type() == QEvent.Type.Close:
            self.saved.set_geometry(self.window.saveGeometry(), self.window.saveState())
        return False
