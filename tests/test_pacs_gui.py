"""The viewer with a real Orthanc: the nodes dialog adds, tests (echo) and removes a node; the PACS dock searches,
retrieves a study into the cache and reviews it as a worklist; Send to PACS stores the SC and SR under the study."""

from __future__ import annotations

from pathlib import Path

import pydicom
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox
from test_gui_review import open_window, settle
from test_pacs import CHEST_CR, ORTHANC, chest_study, orthanc  # noqa: F401 - the fixture, and the skip without it
from test_pacs import pytestmark  # noqa: F401

from xrayviewer.core.review.pacs_nodes import add_node, cache_folder, load_nodes, remove_node


def test_nodes_dialog_adds_tests_and_removes_a_node(qtbot, tmp_path, orthanc):  # noqa: F811
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    window.show_pacs_nodes()
    dialog = window.pacs_nodes_dialog
    dialog.name.setText("gui-test")
    dialog.aet.setText("ORTHANC")
    dialog.host.setText("127.0.0.1")
    dialog.port.setValue(orthanc.dicom)
    qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert load_nodes()["gui-test"].port == orthanc.dicom
    row = [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())].index("gui-test")
    dialog.table.selectRow(row)
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "answers" in dialog.status.text(), timeout=20_000)
    qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert "gui-test" not in load_nodes()
    qtbot.waitUntil(lambda: not dialog.workers, timeout=20_000)
    settle(qtbot, window)


def test_dock_finds_retrieves_and_reviews_then_send_to_pacs_stores_under_the_study(
        qtbot, tmp_path, orthanc, dicom_data, monkeypatch):  # noqa: F811 - the fixture
    add_node("gui-orthanc", orthanc.node)
    window = open_window(qtbot, "mobilenetv2", tmp_path / "review.sqlite")
    try:
        window.show_pacs_dock()
        query = window.pacs_query
        query.node.setCurrentText("gui-orthanc")
        query.modality.setText("CR")
        qtbot.mouseClick(query.search_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: query.table.rowCount() == 1, timeout=30_000)
        assert query.table.item(0, 1).text() == "9RG1" and query.table.item(0, 3).text() == "CR"
        query.table.selectRow(0)
        qtbot.mouseClick(query.retrieve_button, Qt.MouseButton.LeftButton)
        cr = pydicom.dcmread(dicom_data / CHEST_CR, stop_before_pixels=True).SOPInstanceUID
        qtbot.waitUntil(lambda: window.record is not None and Path(window.record.path).parent == cache_folder()
                        and bool(window.worklist.order()), timeout=60_000)
        assert [f.info.sop_uid for f in window.worklist.order()] == [cr]
        settle(qtbot, window)

        before = {i["ID"] for i in orthanc.instances_of(chest_study(dicom_data))}
        monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("gui-orthanc", True))  # the node chooser
        monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)  # no decision
        window.send_to_pacs()
        qtbot.waitUntil(lambda: "Sent the SC and SR" in window.statusBar().currentMessage(), timeout=60_000)
        after = orthanc.instances_of(chest_study(dicom_data))
        new = {i["MainDicomTags"]["SOPInstanceUID"] for i in after if i["ID"] not in before}
        assert len(new) == 2
        assert list(cache_folder().parent.glob(".send-*")) == []  # the exported files are gone once sent
    finally:
        remove_node("gui-orthanc")
    settle(qtbot, window)
