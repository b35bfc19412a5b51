"""What the main window remembers between runs (QSettings): last folder, recent list, choices, geometry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path


from xrayviewer.core.overlay import OverlayStyle


class PersistenceMixin:
    """Reads the remembered state at start and writes it back as it changes and on close."""

    def _last_folder(self) -> str:
        return str(self.qsettings.value("last_folder", str(Path.home())))

    def _remember(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.qsettings.value("recent", [], list) if p != str(path)]
        self.qsettings.setValue("recent", recent[:10])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.qsettings.value("recent", [], list):
            self._action(self.recent_menu, p, lambda _=False, p=p: self.open_paths([p]))

    def _restore_settings(self) -> None:
        s = self.qsettings
        model = str(s.value("model", ""))
        if model in self.models:
            self.panes[0].settings = replace(self.panes[0].settings, model=model)
        self.panes[0].settings = replace(self.panes[0].settings, method=str(s.value("method", "gradcam")))
        self.panes[0].style = OverlayStyle(str(s.value("colormap", "jet")), float(s.value("opacity", 0.4)))
        self.panel.provider.setCurrentText(self.engine.provider)
        if s.value("geometry") is not None:
            self.restoreGeometry(s.value("geometry"))
            self.restoreState(s.value("state"))
        if s.value("compare", False, bool):
            self.compare_action.setChecked(True)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.qsettings.setValue("geometry", self.saveGeometry())
        self.qsettings.setValue("state", self.saveState())
        super().closeEvent(event)
