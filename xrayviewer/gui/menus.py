"""The menu bar and the help texts of the main window."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

from xrayviewer import __version__

SHORTCUTS = [
    ("Left drag", "window / level (horizontal: width, vertical: level)"),
    ("Wheel or right drag", "zoom"), ("Middle drag", "pan"), ("I", "invert"), ("R or Esc", "reset view"),
    ("F", "fit to window"), ("1 or Ctrl+1", "1:1 pixels (in a worklist 1 decides: Ctrl+1)"),
    ("+ / -", "zoom in / out"), ("H", "show / hide heatmap"),
    ("Ctrl+O", "open files"), ("Ctrl+Shift+O", "open folder or DICOMDIR"), ("Ctrl+E", "export view as PNG"),
    ("Ctrl+D", "side-by-side comparison"), ("Ctrl+T", "DICOM tags"),
    ("W / L / A / O / Shift+A / T", "tool: window-level, length, angle, ROI, arrow, text (Delete: last mark)"),
    ("Ctrl+] / Ctrl+[", "rotate 90° / flip"), ("Ctrl+R", "review a folder as a worklist"),
    ("Down, PgDn / Up, PgUp", "next / previous film"), ("Home / End", "first / last film"),
    ("U / Ctrl+U", "in a worklist: next unread film / show unread films only"),
    ("1 / 2 / 3 / 4", "in a worklist: normal / pneumonia / uncertain / other for the film on screen, then the next "
                      "film"),
    ("Ctrl+Z", "withdraw the last decision and go back to its film"),
    ("N", "note for the film; Enter or Esc: back to the film (the note is kept as a draft until the decision; "
          "Enter on a decided film saves it at once)"),
]
ABOUT = (
    f"<h3>XRay Viewer {__version__}</h3><p>Offline chest X-ray review with an AI second opinion "
    "(pneumonia classifier, Grad-CAM family heatmaps) run by ONNX Runtime. <b>Research use only; not a "
    "diagnosis.</b></p><p>The shipped models were trained on frontal chest films of children aged 1-5 from one "
    "hospital (Guangzhou Women and Children's Medical Center): adults, other hospitals, lateral views and other "
    "body parts are outside what they have seen. Images the gate refuses get no result unless you ask.</p>"
    "<p>Models trained on data from Kermany et al., Mendeley Data v2 (2018), CC BY 4.0.</p>"
    "<p>Demo study: the RG1 adult chest CR of the pydicom-data package (github.com/pydicom/pydicom-data).</p>"
)


def add_action(menu: QMenu, parent: QObject, text: str, slot, shortcut=None, checkable: bool = False) -> QAction:
    """An action in `menu` that calls `slot` (toggled for a checkable one); its shortcut works in `parent`'s window."""
    action = QAction(text, parent)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    action.setCheckable(checkable)
    (action.toggled if checkable else action.triggered).connect(slot)
    menu.addAction(action)
    return action


class MenusMixin:
    """File, View and Help menus; the slots they call live in the other main-window mixins."""

    def _action(self, menu: QMenu, text: str, slot, shortcut=None, checkable: bool = False) -> QAction:
        return add_action(menu, self, text, slot, shortcut, checkable)

    def _build_menus(self) -> None:
        file = self.menuBar().addMenu("&File")
        self._action(file, "Open files...", self.opening.open_files_dialog, QKeySequence.StandardKey.Open)
        self._action(file, "Open folder or DICOMDIR...", self.opening.open_folder_dialog, "Ctrl+Shift+O")
        self._action(file, "Open demo study", self.open_demo)
        self.recent_menu = file.addMenu("Recent")
        file.addSeparator()
        self._action(file, "Export view as PNG...", self.export_view, "Ctrl+E")
        self._action(file, "Export DICOM (Secondary Capture and SR)...", self.export_dicom, "Ctrl+Shift+E")
        self._action(file, "Export overlays of the study...", self.export_study)
        self._action(file, "Send to PACS (SC and SR)...", self.send_to_pacs)
        file.addSeparator()
        self._action(file, "PACS query...", self.show_pacs_dock, "Ctrl+Shift+P")
        self._action(file, "PACS nodes...", self.show_pacs_nodes)
        file.addSeparator()
        self._action(file, "Quit", self.close, QKeySequence.StandardKey.Quit)
        view = self.menuBar().addMenu("&View")
        self.compare_action = self._action(view, "Side-by-side comparison", self.set_compare, "Ctrl+D", True)
        self.sync_action = self._action(view, "Synchronise zoom, pan and window", self.pane_layout.set_sync, None,
                                        True)
        self.sync_action.setChecked(True)
        view.addAction(self.toolbar.heatmap_action)  # checkable, follows the panel's "Show" box
        self.toolbar.heatmap_action.setShortcut(QKeySequence("H"))
        presets = view.addMenu("Window presets")
        for name in ("File default", "Full range", "Auto (0.5-99.5 %)", "Soft (2-98 %)"):
            self._action(presets, name, lambda _=False, n=name: self.apply_preset(n))
        self._action(view, "Actual pixels (1:1)", lambda: self.active.view.one_to_one(), "Ctrl+1")
        self._action(view, "DICOM tags...", self.show_tags, "Ctrl+T")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "Shortcuts", self.show_shortcuts, "F1")
        self._action(help_menu, "About", lambda: QMessageBox.about(self, "About XRay Viewer", ABOUT))
        self._refresh_recent()

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in SHORTCUTS)
        box = QMessageBox(self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowTitle("Shortcuts")
        box.setText(f"<table cellpadding=3>{rows}</table>")
        box.setModal(False)
        box.show()
