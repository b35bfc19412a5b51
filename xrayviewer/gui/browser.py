"""Study browser: patients, studies, series and instances (with thumbnails) from the core's study scan."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from xrayviewer.core import XRayViewerError, to_display
from xrayviewer.core.reading.display import to_gray
from xrayviewer.core.reading.readable import dicom_date, person_name
from xrayviewer.gui.viewport import to_qimage
from xrayviewer.gui.workers import Worker, start

if TYPE_CHECKING:
    from xrayviewer.core.reading.study import StudyTree

THUMB = 64
PATH_ROLE = Qt.ItemDataRole.UserRole


def thumbnail(path: Path) -> np.ndarray | None:
    """A small gray picture of the film, or None when it cannot be read."""
    from xrayviewer.core import read_image  # the readers (pydicom) load on first use, after the window is up

    try:
        display = to_gray(to_display(read_image(path)))
    except XRayViewerError:
        return None
    h, w = display.shape
    s = THUMB / max(h, w)
    return cv2.resize(display, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


class StudyBrowser(QWidget):
    instanceChosen = Signal(object)  # Path
    firstInstance = Signal(object)  # Path, after each scan
    error = Signal(str)
    scanned = Signal(int)  # number of instances listed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Study", "Info"])
        self.tree.setIconSize(QSize(THUMB, THUMB))
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # file names readable, thumbnails whole
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.setMinimumWidth(300)
        self.tree.itemActivated.connect(self._chosen)
        self.tree.itemClicked.connect(self._chosen)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self.items: dict[Path, QTreeWidgetItem] = {}

    def scan(self, paths: list[Path]) -> None:
        """Scan in the background; the tree fills in when the headers are read."""
        def work() -> list[StudyTree]:
            from xrayviewer.core.reading.study import scan  # in the worker, once the readers are loaded

            return [scan(p) for p in paths]

        worker = Worker(work)
        worker.signals.result.connect(self._populate)
        worker.signals.error.connect(self.error)
        start(worker)

    def instance_paths(self) -> list[Path]:
        return list(self.items)

    def select(self, path: Path) -> None:
        """Highlight a film's row without announcing it (the caller opens the film)."""
        item = self.items.get(path)
        if item is not None:
            self.tree.setCurrentItem(item)
            self.tree.scrollToItem(item)

    def _populate(self, trees: list[StudyTree]) -> None:
        self.tree.clear()
        self.items.clear()
        problems = []
        for tree in trees:
            problems += tree.problems
            for patient in tree.patients.values():
                p_item = QTreeWidgetItem(self.tree, [person_name(patient.name) or patient.id, patient.id])
                for study in patient.studies.values():
                    s_item = QTreeWidgetItem(p_item, [study.description or "Study", dicom_date(study.date)])
                    for series in study.series.values():
                        label = series.description or f"Series {series.number or ''}".strip()
                        se_item = QTreeWidgetItem(s_item, [label, f"{series.modality} {len(series.instances)} img"])
                        for inst in series.instances:
                            info = f"#{inst.instance_number}" if inst.instance_number is not None else ""
                            if inst.frames > 1:
                                info += f" {inst.frames} frames"
                            item = QTreeWidgetItem(se_item, [inst.path.name, info])
                            item.setData(0, PATH_ROLE, inst.path)
                            item.setToolTip(0, str(inst.path))
                            self.items[inst.path] = item
        if problems:
            bad = QTreeWidgetItem(self.tree, [f"Unreadable ({len(problems)})", ""])
            for problem in problems:
                item = QTreeWidgetItem(bad, [problem.path.name, problem.reason])
                item.setToolTip(0, str(problem.path))
                item.setToolTip(1, problem.reason)
        self.tree.expandAll()
        self.scanned.emit(len(self.items))
        if self.items:
            self.firstInstance.emit(next(iter(self.items)))
            self._make_thumbnails(list(self.items))
        elif problems:
            self.error.emit(f"{problems[0].path}: {problems[0].reason}")

    def _make_thumbnails(self, paths: list[Path]) -> None:
        worker = Worker(lambda: {p: thumbnail(p) for p in paths[:500]})
        worker.signals.result.connect(self._set_thumbnails)
        start(worker)

    def _set_thumbnails(self, thumbs: dict[Path, np.ndarray | None]) -> None:
        for path, thumb in thumbs.items():
            item = self.items.get(path)
            if item is not None and thumb is not None:
                rgb = cv2.cvtColor(thumb, cv2.COLOR_GRAY2RGB)
                item.setIcon(0, QIcon(QPixmap.fromImage(to_qimage(rgb))))

    def _chosen(self, item: QTreeWidgetItem) -> None:
        path = item.data(0, PATH_ROLE)
        if path is not None:
            self.instanceChosen.emit(Path(path))
