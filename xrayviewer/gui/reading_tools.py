"""The toolbar of the main window: open, review, the left-button tools, orientation, heatmap, cine and export.

Cine plays a multi-frame film: its frames are decoded once (in the background) and then only shown; the
analysis runs again when playback stops, on the frame on screen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QSpinBox, QToolBar

from xrayviewer.core.reading.display import to_display
from xrayviewer.core.reading.film_cache import load_frames
from xrayviewer.core.reading.record import ImageRecord
from xrayviewer.core.review.session import ReadingSession
from xrayviewer.gui.background import Tasks
from xrayviewer.gui.opening import OpeningPart
from xrayviewer.gui.panels import ControlPanel

TOOL_ACTIONS = [("wl", "W/L", "Left drag: window / level (W)", "W"),
                ("length", "Length", "Left drag: length in mm (px when the file has no pixel spacing) (L)", "L"),
                ("angle", "Angle", "Three clicks: the angle at the middle point (A)", "A"),
                ("roi", "ROI", "Left drag: mean and SD of the pixel values in a rectangle (O)", "O"),
                ("arrow", "Arrow", "Left drag: an arrow pointing where you release (Shift+A)", "Shift+A"),
                ("text", "Text", "Click: a text annotation (T)", "T")]
CINE_FPS = 10


class ReadingToolbar(QToolBar):
    """Builds the toolbar and runs cine; the marks themselves are drawn by ReadingViewport.

    Collaborators: the session (the panes, the film on screen), `opening` (Open..., another frame), `tasks`, the
    control `panel` (the heatmap's Show box) and the callables of the other buttons: `review_folder`,
    `export_view`, `export_dicom`."""

    def __init__(self, session: ReadingSession, opening: OpeningPart, tasks: Tasks, panel: ControlPanel,
                 review_folder: Callable[[], None], export_view: Callable[[], None],
                 export_dicom: Callable[[], None]) -> None:
        super().__init__("Reading tools")
        self.setObjectName("film")
        self.session, self.opening, self.tasks, self.panel = session, opening, tasks, panel
        self._bar_action("Open...", opening.open_files_dialog, "Open files (Ctrl+O)")
        self._bar_action("Review folder...", review_folder, "Review a folder as a worklist (Ctrl+R)")
        self.addSeparator()
        group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for tool, text, tip, key in TOOL_ACTIONS:
            action = self._bar_action(text, lambda _=False, t=tool: self.set_tool(t), tip, key)
            action.setCheckable(True)
            group.addAction(action)
            self.tool_actions[tool] = action
        self.tool_actions["wl"].setChecked(True)
        self._bar_action("Delete mark", lambda: self.session.active.view.remove_last_mark(),
                         "Remove the last measurement or annotation (Delete)")
        self.addSeparator()
        self._bar_action("Rotate", lambda: self.session.active.view.rotate_90(), "Rotate 90\u00b0 clockwise (Ctrl+])",
                         "Ctrl+]")
        self._bar_action("Flip", lambda: self.session.active.view.flip(), "Mirror left-right (Ctrl+[)", "Ctrl+[")
        self._bar_action("Invert", lambda: self._on_view("toggle_invert"), "Invert grey levels (I)")
        self._bar_action("Fit", lambda: self._on_view("fit"), "Fit to the window (F)")
        self._bar_action("Reset", lambda: self._on_view("reset"), "Default window, no zoom or rotation (R)")
        self.addSeparator()
        self.heatmap_action = self._bar_action(
            "Heatmap", lambda: panel.visible.setChecked(self.heatmap_action.isChecked()), "Show the heatmap (H)")
        self.heatmap_action.setCheckable(True)
        self.heatmap_action.setChecked(panel.visible.isChecked())
        panel.visible.toggled.connect(self.heatmap_action.setChecked)
        self.addSeparator()
        self.frame = QSpinBox()
        self.frame.setPrefix("Frame ")
        self.frame.setMinimum(1)
        self.frame.valueChanged.connect(self.show_frame)
        self.cine_action = self._bar_action("Play", self.play_cine, f"Play the frames at {CINE_FPS} per second")
        self.cine_action.setCheckable(True)
        self.frame_action = self.addWidget(self.frame)
        self.frame_action.setVisible(False)
        self.cine_action.setVisible(False)
        self.cine_frames: list[ImageRecord] = []
        self.cine_timer = QTimer(self)
        self.cine_timer.timeout.connect(lambda: self.frame.setValue(self.frame.value() % self.frame.maximum() + 1))
        self.addSeparator()
        self._bar_action("Export PNG...", export_view, "The view with the result block (Ctrl+E)")
        self._bar_action("Export DICOM...", export_dicom,
                         "Secondary Capture of the view and a Structured Report of the result and decision")
        session.film_shown.connect(lambda record, film: self._frames_changed(record))

    def _bar_action(self, text: str, slot, tip: str, shortcut: str | None = None) -> QAction:
        action = QAction(text, self)
        action.setToolTip(tip)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _on_view(self, method: str) -> None:
        view = self.session.active.view
        if view.record is not None:
            getattr(view, method)()
            view.viewChanged.emit()

    def set_tool(self, tool: str) -> None:
        for pane in self.session.panes:
            pane.view.set_tool(tool)
        self.tool_actions[tool].setChecked(True)

    # ----- frames and cine -----
    def _frames_changed(self, record: ImageRecord) -> None:
        """A new film is on screen: the frame box and Play show only for multi-frame films."""
        if not self.cine_frames or self.cine_frames[0].path != record.path:
            self.cine_frames = []
            self.cine_action.setChecked(False)
        self.frame.blockSignals(True)
        self.frame.setMaximum(max(record.frames, 1))
        self.frame.setValue(record.frame + 1)
        self.frame.blockSignals(False)
        self.frame_action.setVisible(record.frames > 1)
        self.cine_action.setVisible(record.frames > 1)

    def show_frame(self, number: int) -> None:
        """Frame `number` (1-based): from the decoded frames during cine, else read and analysed."""
        record = self.session.record
        if record is None:
            return
        if self.cine_frames and self.cine_timer.isActive():
            frame = self.cine_frames[number - 1]
            self.session.show_frame(frame)
            for pane in self.session.visible_panes():
                pane.view.show_frame(frame)
            return
        if self.cine_frames:
            frame = self.cine_frames[number - 1]
            self.opening.show_loaded((frame, to_display(frame)))
            return
        self.opening.open_image(Path(record.path), number - 1)

    def play_cine(self) -> None:
        if not self.cine_action.isChecked():
            self.cine_timer.stop()
            self.show_frame(self.frame.value())  # the frame on screen gets its analysis
            return
        if self.cine_frames:
            self.cine_timer.start(1000 // CINE_FPS)
            return
        record = self.session.record

        def loaded(frames: list[ImageRecord]) -> None:
            self.cine_frames = frames
            if self.cine_action.isChecked():
                self.cine_timer.start(1000 // CINE_FPS)

        self.tasks.run(lambda: load_frames(record.path), loaded, f"Decoding {record.frames} frames...",
                       on_error=lambda _: self.cine_action.setChecked(False))  # e.g. too many frames to hold at once
