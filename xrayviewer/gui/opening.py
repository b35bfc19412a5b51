"""Opening films: file and folder dialogs, the demo, drag and drop, and reading a film in the background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QFileDialog

from xrayviewer.core import ImageRecord


class OpeningMixin:
    """Everything that puts a film on screen; the analysis starts once it is there."""

    def open_paths(self, paths: list[str | Path]) -> None:
        """Files, folders or DICOMDIRs: the study browser lists them, the first image opens."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        self.opening = paths[0]  # enters Recent once a film from it is on screen (see _image_loaded)
        self.browser.scan(paths)

    def open_demo(self) -> None:
        from xrayviewer.demo import demo_paths

        try:
            self.open_paths(demo_paths())
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            self.show_error(str(exc))

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open images or DICOM files", self._last_folder(),
                                                "Images and DICOM (*.dcm *.png *.jpg *.jpeg *.tif *.tiff *.bmp "
                                                "DICOMDIR *);;All files (*)")
        self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder or a DICOMDIR's folder", self._last_folder())
        if folder:
            self.open_paths([folder])

    def open_image(self, path: Path, frame: int = 0) -> None:
        """Read one film in the background (or take it from the decode-ahead cache) and show it in every pane."""
        generation = self.session.ask()
        self._run(lambda: self.films.get(path, frame), lambda loaded: self._image_loaded(loaded, generation),
                  f"Reading {Path(path).name}...")

    def _image_loaded(self, loaded: tuple[ImageRecord, np.ndarray], generation: int | None = None) -> None:
        if not self.session.show(*loaded, generation):
            return  # the reader has moved on to another film meanwhile
        if self.opening is not None and opened_from(self.opening, Path(self.record.path)):
            self._remember(self.opening)  # Recent holds only what opened: no typos, no missing or unreadable paths
            self.opening = None
        self._frames_changed(self.record)
        self.setWindowTitle(f"{Path(self.record.path).name} - XRay Viewer - research use only")
        marks = self.session.marks()  # a worklist film's, saved with its review
        for pane in self.panes:
            pane.view.set_record(self.record)
            if marks:
                pane.view.set_marks(marks)
        self.panel.show_result(None)
        self.analyze_all()

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        self.open_paths([u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()])


def opened_from(given: Path, film: Path) -> bool:
    """Whether `film` is `given` itself or one of its images (a folder's, or a DICOMDIR's folder's)."""
    root = given.parent if given.name.upper() == "DICOMDIR" else given
    return film == given or root in film.parents

