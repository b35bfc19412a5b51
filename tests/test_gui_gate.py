"""The viewer's side of the gate, under pytest-qt (offscreen): refusals, 'Analyse anyway', notes, threshold
marker, heat legend, method list, model card. Real widgets, real files, real ONNX sessions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from tiny_models import build

from xrayviewer.core.analysis.wording import percent
from xrayviewer.gui.card_dialog import ModelCardDialog
from xrayviewer.gui.main_window import ABOUT, MainWindow
from xrayviewer.gui.result_view import MARKER


def make_window(qtbot, models: list[str]) -> MainWindow:
    w = MainWindow("cpu", models=models)
    qtbot.addWidget(w)
    w.resize(1300, 850)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def shipped(qtbot):
    w = make_window(qtbot, ["mobilenetv2"])
    yield w
    w.saved.store.clear()  # a method chosen here must not leak into the next test's window


def open_and_wait(qtbot, window, path) -> None:
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([path])


def not_clipped(qtbot, label) -> bool:
    """Visible, wrapping, and once the layout has settled as tall as its wrapped text needs."""
    try:
        qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()), timeout=3000)
    except AssertionError:
        return False
    return label.isVisible() and label.wordWrap()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    photo = np.zeros((240, 320, 3), np.uint8)
    photo[..., 0] = np.linspace(0, 255, 320, dtype=np.uint8)[None, :]
    photo[..., 1] = np.linspace(255, 0, 240, dtype=np.uint8)[:, None]
    cv2.imwrite(str(folder / "photo.png"), photo)
    cv2.imwrite(str(folder / "grey.png"), np.full((300, 300), 128, np.uint8))
    return folder


@pytest.mark.parametrize(("name", "reason"), [
    ("RG3_UNCR.dcm", "BodyPartExamined EXTREMITY: not a chest film"),
    ("MR2_UNCR.dcm", "Modality MR (magnetic resonance)"),
    ("OBXXXX1A_2frame.dcm", "NumberOfFrames 2: a multi-frame (cine) series"),
    ("photo.png", "a colour image: colour score"),
    ("grey.png", "a flat image: contrast (standard deviation)"),
])
def test_refused_images_show_reasons_and_no_result(qtbot, shipped, dicom_data, pictures, name, reason):
    path = (pictures if name.endswith(".png") else dicom_data) / name
    open_and_wait(qtbot, shipped, path)
    result, view = shipped.panel.result, shipped.panes[0].view
    assert reason in result.refusal.text() and not_clipped(qtbot, result.refusal)
    assert result.anyway.isVisible() and not result.bar.isVisible() and not result.rule.isVisible()
    assert "PNEUMONIA" not in result.label.text() and "NORMAL" not in result.label.text()
    assert view.heat is None and "not analysed" in view.caption and "%" not in view.caption
    assert not result.heat.isVisible()


def test_analyse_anyway_shows_the_result_marked_out_of_scope(qtbot, shipped, dicom_data):
    open_and_wait(qtbot, shipped, dicom_data / "RG3_UNCR.dcm")
    result, view = shipped.panel.result, shipped.panes[0].view
    with qtbot.waitSignal(shipped.analysisShown, timeout=60_000):
        qtbot.mouseClick(result.anyway, Qt.MouseButton.LeftButton)
    analysis = shipped.panes[0].analysis
    assert analysis.out_of_scope and analysis.label in ("NORMAL", "PNEUMONIA")
    assert result.scope.isVisible() and "OUT OF SCOPE" in result.scope.text()
    assert "BodyPartExamined EXTREMITY" in result.scope.text() and not_clipped(qtbot, result.scope)
    assert result.bar.isVisible() and percent(analysis.probability) in result.bar.text_label.text()
    assert not result.refusal.isVisible() and not result.anyway.isVisible()
    assert view.heat is not None and "OUT OF SCOPE" in view.caption
    open_and_wait(qtbot, shipped, dicom_data / "RG3_UNCI.dcm")  # the next film is gated again
    assert shipped.panes[0].analysis.label is None and result.refusal.isVisible()


def test_the_demo_chest_cr_gets_the_population_note(qtbot, shipped, dicom_data):
    open_and_wait(qtbot, shipped, dicom_data / "RG1_J2KR.dcm")
    notes = shipped.panel.result.notes
    assert "outside the training population (children aged 1-5): 64 years old" in notes.text()
    assert not_clipped(qtbot, notes)
    assert not any(r.code in ("modality", "body_part", "view", "frames") for r in shipped.panes[0].analysis.refused)


@pytest.fixture
def tiny_window(qtbot, tmp_path):
    reference = {"gradcam": 50.0, "eigencam": 50.0, "rule": "test reference"}
    models = [build(tmp_path / "ref.onnx", threshold={"value": 0.3, "rule": "the test's fixed threshold"},
                    cam_reference=reference, name="with-reference"),
              build(tmp_path / "plain.onnx", name="plain")]
    w = make_window(qtbot, [str(m) for m in models])
    yield w
    w.saved.store.clear()


def choose(qtbot, window, combo, index: int) -> None:
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        combo.setCurrentIndex(index)


def test_threshold_marker_is_drawn_on_the_probability_bar(qtbot, tiny_window, dicom_data):
    open_and_wait(qtbot, tiny_window, dicom_data / "RG1_J2KI.dcm")
    result = tiny_window.panel.result
    bar = result.bar
    assert bar.threshold == 0.3 and result.rule.text().endswith("threshold 0.30: the test's fixed threshold")
    x = bar.marker_x()
    assert x == pytest.approx(0.3 * bar.width(), abs=2)
    image = bar.grab().toImage()
    scale = image.width() / bar.width()

    def marker_rows(column: float) -> int:
        return sum(image.pixelColor(round(column * scale), y).name() == MARKER.name() for y in range(image.height()))

    assert marker_rows(x) >= bar.height() // 2 * scale
    assert marker_rows(x + 25) == 0


def test_heat_legend_says_what_colour_means(qtbot, tiny_window, dicom_data):
    panel, pane = tiny_window.panel, tiny_window.panes[0]
    panel.method.setCurrentIndex(panel.method.findData("gradcam"))  # the tiny card's reference is Grad-CAM's
    open_and_wait(qtbot, tiny_window, dicom_data / "RG1_J2KI.dcm")
    assert "relative to typical pneumonia films" in panel.result.heat.text()
    assert pane.view.bar_top == "typical pneumonia film" and pane.analysis.cam.reference == 50.0
    assert pane.view.heat.max() < 0.5 * 255  # weak against the reference: not a saturated hot spot
    choose(qtbot, tiny_window, panel.target, panel.target.findText("NORMAL"))
    assert panel.result.heat.text().startswith("Heatmap empty: Grad-CAM finds no positive evidence for NORMAL")
    choose(qtbot, tiny_window, panel.method, panel.method.findData("eigencam"))
    assert "not class-specific" in panel.result.heat.text()
    choose(qtbot, tiny_window, panel.model, panel.model.findText(tiny_window.models[1]))
    assert panel.result.heat.text().startswith("Colour stretched per image: this model has no reference scale")
    assert pane.view.bar_top == "this image's maximum"


def test_method_list_says_which_methods_are_class_specific(shipped):
    method = shipped.panel.method
    tips = {method.itemData(i): method.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(method.count())}
    assert "ignores the target" in method.itemText(method.findData("eigencam"))
    assert "Not class-specific" in tips["eigencam"]
    assert "equals Grad-CAM" in tips["xgradcam"] and "Grad-CAM" in method.itemText(method.findData("xgradcam"))
    assert all("Class-specific" in tip for name, tip in tips.items() if name != "eigencam")


def test_model_card_dialog_is_readable_text(qtbot, shipped, tmp_path):
    shipped.show_model_card()
    dialog = shipped.findChild(ModelCardDialog)
    text = dialog.text.toPlainText()
    for heading in ("Intended use", "Training population and data", "Operating threshold", "Validation",
                    "Limitations", "Licence and attribution"):
        assert heading in text
    assert "Research use only, not a diagnosis" in text and "children aged 1-5" in text and "CC BY 4.0" in text
    assert "{" not in text  # not raw JSON
    new = build(tmp_path / "new.onnx", training_data={"population": "a test population", "attribution": "Test data"},
                limitations=["Only for tests."], shifted={"auc": 0.91, "n": 10}, shortcut={"ring_20px": 0.2},
                calibration={"temperature": 1.3}, cam_reference={"gradcam": 2.0, "rule": "95th percentile"})
    new_dialog = ModelCardDialog(shipped.engine.model(new).card.data)
    qtbot.addWidget(new_dialog)
    new_text = new_dialog.text.toPlainText()
    for part in ("a test population", "Only for tests.", "Shifted validation", "AUC 0.910", "Shortcut check",
                 "Calibration", "temperature: 1.3", "Heatmap scale", "gradcam: 2", "Test data"):
        assert part in new_text


def test_about_box_states_the_training_population():
    assert "children aged 1-5" in ABOUT and "Guangzhou Women and Children's Medical Center" in ABOUT
