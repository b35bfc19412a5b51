"""Opening films: file and folder dialogs, the demo, drag and drop, and reading a film in the background."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QWidget

from xrayviewer.core import ImageRecord
from xrayviewer.core.reading.film_cache import FilmCache
from xrayviewer.core.reading.readable import person_name
from xrayviewer.core.review.session import ReadingSession
from xrayviewer.gui.analysis_control import AnalysisPart
from xrayviewer.gui.background import Tasks
from xrayviewer.gui.browser import StudyBrowser
from xrayviewer.gui.messages import Messages
from xrayviewer.gui.panels import ControlPanel


class OpeningPart(QObject):
    """Everything that puts a film on screen; the analysis starts once it is there.

    Collaborators: the session (which film is on screen), the study `browser`, the `films` cache, `tasks`,
    `analysis`, the control `panel`, `remember(path)` (Recent), `last_folder()`, `set_title(text)` and `messages`."""

    def __init__(self, session: ReadingSession, browser: StudyBrowser, films: FilmCache, tasks: Tasks,
                 analysis: AnalysisPart, panel: ControlPanel, remember: Callable[[Path], None],
                 last_folder: Callable[[], str], set_title: Callable[[str], None], messages: Messages,
                 parent: QWidget) -> None:
        super().__init__(parent)
        self.session, self.browser, self.films, self.tasks = session, browser, films, tasks
        self.analysis, self.panel, self.remember, self.last_folder = analysis, panel, remember, last_folder
        self.set_title, self.messages, self.dialog_parent = set_title, messages, parent
        self.opening: Path | None = None  # what open_paths was last given
        browser.instanceChosen.connect(self.open_image)
        browser.firstInstance.connect(self.open_image)  # each scan opens its first film
        browser.error.connect(messages.error)

    def open_paths(self, paths: list[str | Path]) -> None:
        """Files, folders or DICOMDIRs: the study browser lists them, the first image opens."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        self.opening = paths[0]  # enters Recent once a film from it is on screen (see show_loaded)
        self.browser.scan(paths)

    def open_demo(self) -> None:
        from xrayviewer.demo import demo_paths

        try:
            self.open_paths(demo_paths())
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            self.messages.error(str(exc))

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self.dialog_parent, "Open images or DICOM files", self.last_folder(),
                                                "Images and DICOM (*.dcm *.png *.jpg *.jpeg *.tif *.tiff *.bmp "
                                                "DICOMDIR *);;All files (*)")
        self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.dialog_parent, "Open a folder or a DICOMDIR's folder",
                                                  self.last_folder())
        if folder:
            self.open_paths([folder])

    def open_image(self, path: Path, frame: int = 0) -> None:
        """Read one film in the background (or take it from the decode-ahead cache) and show it in every pane."""
        generation, films = self.session.ask(), self.films
        self.tasks.run(lambda: films.get(path, frame), lambda loaded: self.show_loaded(loaded, generation),
                       f"Reading {Path(path).name}...")

    def show_loaded(self, loaded: tuple[ImageRecord, np.ndarray], generation: int | None = None) -> None:
        """A film read: on screen in every pane (unless another was asked for since), then analysed."""
        session = self.session
        if not session.show(*loaded, generation):
            return  # the reader has moved on to another film meanwhile
        record = session.record
        if self.opening is not None and opened_from(self.opening, Path(record.path)):
            self.remember(self.opening)  # Recent holds only what opened: no typos, no missing or unreadable paths
            self.opening = None
        self.set_title(f"{film_title(record)} - XRay Viewer - research use only")
        marks = session.marks()  # a worklist film's, saved with its review
        for pane in session.panes:
            pane.view.set_record(record)
            if marks:
                pane.view.set_marks(marks)
        self.panel.show_result(None)
        self.analysis.analyze_all()

    def drop(self, event) -> None:
        """Files or folders dropped onto the window open as File > Open would open them."""
        self.open_paths([u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()])


def film_title(record: ImageRecord) -> str:
    """The patient's name and the file's (a film retrieved from a PACS is kept under a name made of its UID)."""
    name = person_name(record.metadata.patient_name)
    return f"{name} - {Path(record.path).name}" if name else Path(record.path).name


def opened_from(given: Path, film: Path) -> bool:
    """Whether `film` is `given` itself or one of its images (a folder's, or a DICOMDIR's folder's)."""
    root = given.parent if given.name.upper() == "DICOMDIR" else given
    return film == given or root in film.parents
