"""What the main window remembers between runs (through gui.settings): last folder, recent list, choices, geometry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path


class PersistenceMixin:
    """Reads the remembered state at start and writes it back as it changes and on close."""

    def _last_folder(self) -> str:
        return self.saved.last_folder()

    def _remember(self, path: Path) -> None:
        self.saved.remember(path)
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.saved.recent():
            self._action(self.recent_menu, p, lambda _=False, p=p: self.open_paths([p]))

    def _restore_settings(self) -> None:
        model = self.saved.model(self.models)
        if model:
            self.panes[0].settings = replace(self.panes[0].settings, model=model)
        self.panes[0].settings = replace(self.panes[0].settings, method=self.saved.method())
        self.panes[0].style = self.saved.style()
        self.panel.provider.blockSignals(True)  # showing the provider in use is no choice to save
        self.panel.provider.setCurrentText(self.engine.provider)
        self.panel.provider.blockSignals(False)
        geometry = self.saved.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry[0])
            self.restoreState(geometry[1])
        if self.saved.compare():
            self.compare_action.setChecked(True)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.saved.set_geometry(self.saveGeometry(), self.saveState())
        super().closeEvent(event)
