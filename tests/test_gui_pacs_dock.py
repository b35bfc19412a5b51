"""The PACS dock with a real Orthanc: what a search finds is counted ('0 studies' too), a new or failed search clears
the last results and their highlighted row."""

from __future__ import annotations

from PySide6.QtCore import Qt
from test_gui_review import open_window, settle
from test_pacs import ORTHANC, orthanc  # noqa: F401 - the fixture, and the skip without it
from test_pacs import pytestmark  # noqa: F401

from xrayviewer.core.review.pacs_nodes import add_node, remove_node

CLOSED_PORT = 47791  # this helper's loopback range; nothing listens there


def search(qtbot, query, node: str, patient: str = "") -> None:
    query.node.setCurrentText(node)
    query.patient.setText(patient)
    qtbot.mouseClick(query.search_button, Qt.MouseButton.LeftButton)


def test_searches_are_counted_and_clear_the_last_results(qtbot, tmp_path, orthanc):  # noqa: F811
    add_node("dock-orthanc", orthanc.node)
    add_node("dock-closed", f"NOBODY@127.0.0.1:{CLOSED_PORT}")
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    try:
        window.show_pacs_dock()
        query = window.pacs_query
        query.reload_nodes()
        query.modality.setText("CR")
        search(qtbot, query, "dock-orthanc")
        qtbot.waitUntil(lambda: query.table.rowCount() == 1, timeout=30_000)
        assert query.found.text() == "1 study"
        query.table.selectRow(0)
        search(qtbot, query, "dock-orthanc", "NOBODY^ATALL*")
        assert query.table.rowCount() == 0 and not query.table.selectionModel().selectedRows()  # at once
        qtbot.waitUntil(lambda: query.found.text() == "0 studies", timeout=30_000)

        search(qtbot, query, "dock-orthanc")
        qtbot.waitUntil(lambda: query.table.rowCount() == 1, timeout=30_000)
        errors: list[str] = []
        window.messages.errorShown.connect(errors.append)
        search(qtbot, query, "dock-closed")
        assert query.table.rowCount() == 0
        qtbot.waitUntil(lambda: bool(errors) and not window.workers, timeout=60_000)
        assert "failed" in query.found.text() and query.table.rowCount() == 0
    finally:
        remove_node("dock-orthanc")
        remove_node("dock-closed")
    settle(qtbot, window)
