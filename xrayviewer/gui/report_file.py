"""The worklist's report as a file: CSV (one row per film, as `xrayviewer report --csv`) or PDF (the report's page,
laid out by Qt on numbered A4 landscape pages with the machine's fonts, which it embeds: notes and names in other
scripts print where a font has their letters)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QMarginsF
from PySide6.QtGui import QFont, QGuiApplication, QPageLayout, QPageSize, QPdfWriter, QTextDocument
from PySide6.QtWidgets import QFileDialog, QWidget

from xrayviewer.core.review.report import page, rows, to_csv
from xrayviewer.core.review.store import FilmRow

FORMATS = {"CSV (*.csv)": ".csv", "PDF (*.pdf)": ".pdf"}


def ask_report_path(parent: QWidget, folder: str) -> Path | None:
    """Where to save the report, as CSV or PDF (a name without either suffix takes the chosen type's); None when
    cancelled."""
    path, chosen = QFileDialog.getSaveFileName(parent, "Export the worklist's report",
                                               str(Path(folder) / "worklist-report.csv"), ";;".join(FORMATS))
    if not path:
        return None
    path = Path(path)
    return path if path.suffix.lower() in FORMATS.values() else path.with_name(path.name + FORMATS.get(chosen, ".csv"))


def write_report(path: Path, films: list[FilmRow]) -> None:
    """PDF when `path` ends in .pdf, else CSV. OSError when it cannot be written."""
    if path.suffix.lower() == ".pdf":
        write_pdf(page(films), path)
    else:
        path.write_text(to_csv(rows(films)), encoding="utf-8")


def write_pdf(html: str, path: Path) -> None:
    """`html` printed to a PDF at `path` through a temporary file and a rename: a failure never leaves half a file.
    OSError (with the system's reason) when the folder cannot be written. Makes a Qt application for the command
    line when there is none."""
    application()
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(b"")  # QPdfWriter says nothing when it cannot open its file: find out here, with a reason
    try:
        writer = QPdfWriter(str(temporary))
        writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Landscape,
                                         QMarginsF(0, 0, 0, 0), QPageLayout.Unit.Millimeter))
        writer.setTitle(f"XRay Viewer worklist report {datetime.now():%Y-%m-%d}")
        writer.setCreator("XRay Viewer")
        document = QTextDocument()
        font = document.defaultFont()
        font.setStyleStrategy(QFont.StyleStrategy.PreferNoShaping)  # no ligatures: 'fi' is copied and found as 'fi'
        document.setDefaultFont(font)
        document.setHtml(html)
        document.print_(writer)  # within margins of 2 cm, numbers the pages; the table's header row repeats on each
        del writer  # the file is complete once the writer is gone
        if temporary.stat().st_size == 0:
            raise OSError(f"Qt could not write {temporary.name}")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


_printing: list[QGuiApplication] = []  # the command line's application, kept for the life of the process


def application() -> QGuiApplication:
    """The running Qt application, else one for printing alone: on Linux offscreen (no display is needed), elsewhere
    the system's own platform (it shows nothing)."""
    app = QGuiApplication.instance()
    if app is None:
        platform = [] if "QT_QPA_PLATFORM" in os.environ or not sys.platform.startswith("linux") else [
            "-platform", "offscreen"]
        app = QGuiApplication(["xrayviewer", *platform])
        _printing.append(app)
    return app
