"""The two panes: which is active, side-by-side comparison, synchronised geometry, window presets."""

from __future__ import annotations

from dataclasses import replace

from xrayviewer.core import Window
from xrayviewer.core.analysis.cam import DEFAULT_METHOD
from xrayviewer.core.reading.display import percentile_window
from xrayviewer.gui.analysis_control import Pane
from xrayviewer.gui.panels import AnalysisSettings


class CompareMixin:
    """Layout of the viewports and what is shared between them."""

    def _second_settings(self, first: AnalysisSettings) -> AnalysisSettings:
        other = [m for m in self.models if m != first.model]
        if other:
            return replace(first, model=other[0])
        return replace(first, method="gradcam" if first.method == DEFAULT_METHOD else DEFAULT_METHOD)

    def set_active(self, pane: Pane) -> None:
        self.session.set_active(pane)
        for p in self.panes:
            p.view.active = p is pane and self.panes[1].view.isVisible()
            p.view.update()
        self.panel.show_state(pane.settings, pane.style)
        self.panel.show_result(pane.analysis)

    def set_compare(self, on: bool) -> None:
        second = self.panes[1]
        second.view.setVisible(on)
        self.session.set_compare(on)
        self.saved.set_compare(on)
        if on:
            half = max(self.views.width() // 2, 200)
            self.views.setSizes([half, half])
            second.view.set_record(self.record)
            second.view.set_style(second.style)
            if self.record is not None:
                self.analyze(second)
            self._sync_from(self.panes[0])
        else:
            self.set_active(self.panes[0])
        self.set_active(self.active)

    def set_sync(self, on: bool) -> None:
        self.sync = on

    def _sync_from(self, source: Pane) -> None:
        if not self.sync:
            return
        for pane in self.panes:
            if pane is not source and pane.view.isVisible() and pane.view.record is source.view.record:
                pane.view.apply_geometry(source.view.geometry_state())

    def apply_preset(self, name: str) -> None:
        if self.record is None:
            return
        pixels = self.record.pixels
        windows = {
            "File default": self.record.window,
            "Full range": Window.from_range(float(pixels.min()), float(pixels.max())),
            "Auto (0.5-99.5 %)": percentile_window(pixels),
            "Soft (2-98 %)": percentile_window(pixels, 2, 98),
        }
        self.active.view.set_window(windows[name])
