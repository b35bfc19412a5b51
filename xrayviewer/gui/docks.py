"""The window's docks on the left: the study browser, the worklist and the PACS query share one place as tabs, and
the one asked for comes to the front. A window-frame part: it is given the main window, whose docks it arranges."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

LEFT = Qt.DockWidgetArea.LeftDockWidgetArea


class Docks:
    """Adds docks beside the study browser's and brings one to the front."""

    def __init__(self, window: QMainWindow) -> None:
        self.window = window

    def add(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea = LEFT) -> QDockWidget:
        """A dock named `name` (its state is saved by that name) holding `widget`; on the left, a tab beside the
        study browser (the whole height for each)."""
        dock = QDockWidget(title, self.window)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.window.addDockWidget(area, dock)
        study = self.study()
        if area == LEFT and study is not None and study is not dock:
            self.window.tabifyDockWidget(study, dock)
        return dock

    def study(self) -> QDockWidget | None:
        return self.window.findChild(QDockWidget, "study")

    def raise_study(self) -> None:
        """The study browser in front (a restored layout may have left the empty worklist there)."""
        self.study().raise_()

    def bring_forward(self, dock: QDockWidget, width: int = 0) -> None:
        """`dock` in front, a tab beside the study browser again if it was moved apart, at least `width` wide (up
        to 40 % of the window, so that the film keeps the most room)."""
        window, study = self.window, self.study()
        if window.dockWidgetArea(dock) == window.dockWidgetArea(study) and \
                dock not in window.tabifiedDockWidgets(study):
            window.tabifyDockWidget(study, dock)
        dock.show()
        dock.raise_()
        wanted = min(width, int(window.width() * 0.4))
        if dock.width() < wanted:
            window.resizeDocks([dock], [wanted], Qt.Orientation.Horizontal)
