"""The toolbar of the main window: open, review, the left-button tools, orientation, heatmap, cine and export.

Cine plays a multi-frame film: its frames are decoded once (in the background) and then only shown; the
analysis runs again when playback stops, on the frame on screen.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QSpinBox, QToolBar

from xrayviewer.core.reading.display import to_display
from xrayviewer.core.reading.film_cache import load_frames
from xrayviewer.core.reading.record import ImageRecord

TOOL_ACTIONS = [("wl", "W/L", "Left drag: window / level (W)", "W"),
                ("length", "Length", "Left drag: length in mm (px when the file has no pixel spacing) (L)", "L"),
                ("angle", "Angle", "Three clicks: the angle at the middle point (A)", "A"),
                ("roi", "ROI", "Left drag: mean and SD of the pixel values in a rectangle (O)", "O"),
                ("arrow", "Arrow", "Left drag: an arrow pointing where you release (Shift+A)", "Shift+A"),
                ("text", "Text", "Click: a text annotation (T)", "T")]
CINE_FPS = 10


class ReadingToolsMixin:
    """Builds the toolbar and runs cine; the marks themselves are drawn by ReadingViewport."""

    def _build_toolbar(self) -> None:
        bar: QToolBar = self.addToolBar("Reading tools")
        bar.setObjectName("film")
        self._bar_action(bar, "Open...", self.open_files_dialog, "Open files (Ctrl+O)")
        self._bar_action(bar, "Review folder...", self.review.review_folder_dialog,
                         "Review a folder as a worklist (Ctrl+R)")
        bar.addSeparator()
        group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for tool, text, tip, key in TOOL_ACTIONS:
            action = self._bar_action(bar, text, lambda _=False, t=tool: self.set_tool(t), tip, key)
            action.setCheckable(True)
            group.addAction(action)
            self.tool_actions[tool] = action
        self.tool_actions["wl"].setChecked(True)
        self._bar_action(bar, "Delete mark", lambda: self.active.view.remove_last_mark(),
                         "Remove the last measurement or annotation (Delete)")
        bar.addSeparator()
        self._bar_action(bar, "Rotate", lambda: self.active.view.rotate_90(), "Rotate 90\u00b0 clockwise (Ctrl+])",
                         "Ctrl+]")
        self._bar_action(bar, "Flip", lambda: self.active.view.flip(), "Mirror left-right (Ctrl+[)", "Ctrl+[")
        self._bar_action(bar, "Invert", lambda: self._on_view("toggle_invert"), "Invert grey levels (I)")
        self._bar_action(bar, "Fit", lambda: self._on_view("fit"), "Fit to the window (F)")
        self._bar_action(bar, "Reset", lambda: self._on_view("reset"), "Default window, no zoom or rotation (R)")
        bar.addSeparator()
        self.heatmap_action = self._bar_action(
            bar, "Heatmap", lambda: self.panel.visible.setChecked(self.heatmap_action.isChecked()),
            "Show the heatmap (H)")
        self.heatmap_action.setCheckable(True)
        self.heatmap_action.setChecked(self.panel.visible.isChecked())
        self.panel.visible.toggled.connect(self.heatmap_action.setChecked)
        bar.addSeparator()
        self.frame = QSpinBox()
        self.frame.setPrefix("Frame ")
        self.frame.setMinimum(1)
        self.frame.valueChanged.connect(self.show_frame)
        self.cine_action = self._bar_action(bar, "Play", self.play_cine, f"Play the frames at {CINE_FPS} per second")
        self.cine_action.setCheckable(True)
        self.frame_action = bar.addWidget(self.frame)
        self.frame_action.setVisible(False)
        self.cine_action.setVisible(False)
        self.cine_frames: list[ImageRecord] = []
        self.cine_timer = QTimer(self)
        self.cine_timer.timeout.connect(lambda: self.frame.setValue(self.frame.value() % self.frame.maximum() + 1))
        bar.addSeparator()
        self._bar_action(bar, "Export PNG...", self.export_view, "The view with the result block (Ctrl+E)")
        self._bar_action(bar, "Export DICOM...", self.export_dicom,
                         "Secondary Capture of the view and a Structured Report of the result and decision")

    def _bar_action(self, bar: QToolBar, text: str, slot, tip: str, shortcut: str | None = None) -> QAction:
        action = QAction(text, self)
        action.setToolTip(tip)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        bar.addAction(action)
        return action

    def _on_view(self, method: str) -> None:
        view = self.active.view
        if view.record is not None:
            getattr(view, method)()
            view.viewChanged.emit()

    def set_tool(self, tool: str) -> None:
        for pane in self.panes:
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
        if self.record is None:
            return
        if self.cine_frames and self.cine_timer.isActive():
            frame = self.cine_frames[number - 1]
            self.session.show_frame(frame)
            for pane in self.visible_panes():
                pane.view.show_frame(frame)
            return
        if self.cine_frames:
            frame = self.cine_frames[number - 1]
            self._image_loaded((frame, to_display(frame)))
            return
        self.open_image(Path(self.record.path), number - 1)

    def play_cine(self) -> None:
        if not self.cine_action.isChecked():
            self.cine_timer.stop()
            self.show_frame(self.frame.value())  # the frame on screen gets its analysis
            return
        if self.cine_frames:
            self.cine_timer.start(1000 // CINE_FPS)
            return
        path = self.record.path

        def loaded(frames: list[ImageRecord]) -> None:
            self.cine_frames = frames
            if self.cine_action.isChecked():
                self.cine_timer.start(1000 // CINE_FPS)

        self._run(lambda: load_frames(path), loaded, f"Decoding {self.record.frames} frames...",
                  on_error=lambda _: self.cine_action.setChecked(False))  # e.g. too many frames to hold at once
