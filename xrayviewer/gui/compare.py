"""The two panes: the splitter that holds their viewports, which is active, side-by-side comparison, synchronised
geometry, window presets."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QSplitter

from xrayviewer.core import Window
from xrayviewer.core.analysis.cam import DEFAULT_METHOD
from xrayviewer.core.reading.display import percentile_window
from xrayviewer.core.review.session import AnalysisSettings, ReadingSession
from xrayviewer.gui.analysis_control import AnalysisPart, Pane
from xrayviewer.gui.panels import ControlPanel
from xrayviewer.gui.settings import Settings


def second_settings(first: AnalysisSettings, models: list[str]) -> AnalysisSettings:
    """The second pane's analysis: another model when there is one, else the same model with another method."""
    other = [m for m in models if m != first.model]
    if other:
        return replace(first, model=other[0])
    return replace(first, method="gradcam" if first.method == DEFAULT_METHOD else DEFAULT_METHOD)


class PanesPart(QObject):
    """Lays out the session's panes side by side (`views`, a splitter the window places) and keeps what is shared
    between them. Collaborators: the session, the control `panel` (shows the active pane), `analysis` (the second
    pane's analysis when it appears), `settings` (compare is remembered)."""

    def __init__(self, session: ReadingSession, panel: ControlPanel, analysis: AnalysisPart,
                 settings: Settings, parent: QObject) -> None:
        super().__init__(parent)  # Qt owns it: Python's collector never deletes it from a worker thread
        self.session, self.panel, self.analysis, self.saved = session, panel, analysis, settings
        self.sync = True
        self.views = QSplitter()
        for pane in session.panes:
            self.views.addWidget(pane.view)
            pane.view.activated.connect(lambda p=pane: self.set_active(p))
            pane.view.viewChanged.connect(lambda p=pane: self._sync_from(p))
        session.panes[1].view.hide()

    def set_active(self, pane: Pane) -> None:
        self.session.set_active(pane)
        for p in self.session.panes:
            p.view.active = p is pane and self.session.panes[1].view.isVisible()
            p.view.update()
        self.panel.show_state(pane.settings, pane.style)
        self.panel.show_result(pane.analysis)

    def set_compare(self, on: bool) -> None:
        first, second = self.session.panes[:2]
        record = self.session.record
        second.view.setVisible(on)
        self.session.set_compare(on)
        self.saved.set_compare(on)
        if on:
            half = max(self.views.width() // 2, 200)
            self.views.setSizes([half, half])
            second.view.set_record(record)
            second.view.set_style(second.style)
            if record is not None:
                self.analysis.analyze(second)
            self._sync_from(first)
        else:
            self.set_active(first)
        self.set_active(self.session.active)

    def set_sync(self, on: bool) -> None:
        self.sync = on

    def _sync_from(self, source: Pane) -> None:
        if not self.sync:
            return
        for pane in self.session.panes:
            if pane is not source and pane.view.isVisible() and pane.view.record is source.view.record:
                pane.view.apply_geometry(source.view.geometry_state())

    def apply_preset(self, name: str) -> None:
        record = self.session.record
        if record is None:
            return
        pixels = record.pixels
        windows = {
            "File default": record.window,
            "Full range": Window.from_range(float(pixels.min()), float(pixels.max())),
            "Auto (0.5-99.5 %)": percentile_window(pixels),
            "Soft (2-98 %)": percentile_window(pixels, 2, 98),
        }
        self.session.active.view.set_window(windows[name])
