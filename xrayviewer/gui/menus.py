"""The menu bar and the help texts of the main window."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar, QMessageBox, QWidget

from xrayviewer import __version__

if TYPE_CHECKING:  # the parts import add_action from here
    from xrayviewer.core.review.session import ReadingSession
    from xrayviewer.gui.compare import PanesPart
    from xrayviewer.gui.export_actions import ExportActions
    from xrayviewer.gui.opening import OpeningPart
    from xrayviewer.gui.pacs_dock import PacsPart
    from xrayviewer.gui.reading_tools import ReadingToolbar
    from xrayviewer.gui.review_mode import ReviewPart

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


class Menus:
    """File, View, Review and Help menus, built from the parts whose actions they offer (each part keeps its slots);
    `compare_action` and `sync_action` are the View menu's checkable actions."""

    def __init__(self, bar: QMenuBar, parent: QWidget, session: ReadingSession, opening: OpeningPart,
                 exports: ExportActions, pacs: PacsPart, panes: PanesPart, toolbar: ReadingToolbar,
                 review: ReviewPart, recent_menu: QMenu, close: Callable[[], object]) -> None:
        self.parent = parent

        def action(menu: QMenu, text: str, slot, shortcut=None, checkable: bool = False) -> QAction:
            return add_action(menu, parent, text, slot, shortcut, checkable)

        file = bar.addMenu("&File")
        action(file, "Open files...", opening.open_files_dialog, QKeySequence.StandardKey.Open)
        action(file, "Open folder or DICOMDIR...", opening.open_folder_dialog, "Ctrl+Shift+O")
        action(file, "Open demo study", opening.open_demo)
        file.addMenu(recent_menu)
        file.addSeparator()
        action(file, "Export view as PNG...", exports.export_view, "Ctrl+E")
        action(file, "Export DICOM (Secondary Capture and SR)...", exports.export_dicom, "Ctrl+Shift+E")
        action(file, "Export overlays of the study...", exports.export_study)
        action(file, "Send to PACS (SC and SR)...", exports.send_to_pacs)
        file.addSeparator()
        action(file, "PACS query...", pacs.show_dock, "Ctrl+Shift+P")
        action(file, "PACS nodes...", pacs.show_nodes)
        file.addSeparator()
        action(file, "Quit", close, QKeySequence.StandardKey.Quit)
        view = bar.addMenu("&View")
        self.compare_action = action(view, "Side-by-side comparison", panes.set_compare, "Ctrl+D", True)
        self.sync_action = action(view, "Synchronise zoom, pan and window", panes.set_sync, None, True)
        self.sync_action.setChecked(True)
        view.addAction(toolbar.heatmap_action)  # checkable, follows the panel's "Show" box
        toolbar.heatmap_action.setShortcut(QKeySequence("H"))
        presets = view.addMenu("Window presets")
        for name in ("File default", "Full range", "Auto (0.5-99.5 %)", "Soft (2-98 %)"):
            action(presets, name, lambda _=False, n=name: panes.apply_preset(n))
        action(view, "Actual pixels (1:1)", lambda: session.active.view.one_to_one(), "Ctrl+1")
        action(view, "DICOM tags...", exports.show_tags, "Ctrl+T")
        help_menu = bar.addMenu("&Help")
        action(help_menu, "Shortcuts", self.show_shortcuts, "F1")
        action(help_menu, "About", lambda: QMessageBox.about(parent, "About XRay Viewer", ABOUT))
        review.build_menu(bar.addMenu("&Review"))  # after Help, where it has always been

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in SHORTCUTS)
        box = QMessageBox(self.parent)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowTitle("Shortcuts")
        box.setText(f"<table cellpadding=3>{rows}</table>")
        box.setModal(False)
        box.show()
