"""The exported view of a small film is legible (enlarged, marks' labels inside it, a colour bar with its scale, a
footer people can read), percentages never round to certainty, the viewport's corner texts never overlap, and the
information dialogs do not pile up over a day."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QDialog
from tiny_models import build

from xrayviewer.core import read_image, to_display
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.overlay import OverlayStyle, colormap_lut, composite
from xrayviewer.core.analysis.wording import percent
from xrayviewer.core.review.export import result_text
from xrayviewer.core.review.measure import measure
from xrayviewer.core.review.report_image import WORK_PX, Reading, reading_picture, result_lines
from xrayviewer.gui.card_dialog import ModelCardDialog
from xrayviewer.gui.export_actions import TagsDialog
from xrayviewer.gui.main_window import MainWindow
from xrayviewer.gui.viewport import Viewport


@pytest.fixture(scope="module")
def small_reading(kermany) -> tuple[Reading, np.ndarray]:
    """A 224-px pneumonia film analysed by the shipped model, a length mark ending at the top-right corner (its
    label has no room above nor right of the end), and the view with the heatmap in jet."""
    record = read_image(sorted((kermany / "PNEUMONIA").iterdir())[0])
    display = to_display(record)
    engine = Engine("cpu")
    analysis = engine.analyze(engine.model("mobilenetv2"), display, record=record, force=True)
    mark = measure(record, "length", [(30, 150), (220, 3)])
    return Reading(record, analysis, marks=(mark,), colormap="jet"), composite(display, analysis.cam.heat,
                                                                               OverlayStyle())


def ramp_run(row: np.ndarray, colormap: str) -> np.ndarray:
    """The colormap indices of the longest run of `row`'s pixels that are colours of `colormap`."""
    lut = colormap_lut(colormap).reshape(256, 3).astype(int)
    distance = np.abs(row.astype(int)[:, None, :] - lut[None]).sum(axis=2)
    index, close = distance.argmin(axis=1), distance.min(axis=1) <= 12
    best, start = (0, 0), None
    for i, ok in enumerate(np.append(close, False)):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            best, start = max(best, (start, i), key=lambda run: run[1] - run[0]), None
    return index[best[0]:best[1]]


def text_rows(block: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) of each band of rows of `block` holding bright pixels: one per line of text."""
    bright = np.append(block.max(axis=(1, 2)) > 100, False)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], bright]).astype(int)))
    return list(zip(edges[::2], edges[1::2]))


def test_small_film_exports_enlarged_with_colour_bar_readable_footer_and_labels_inside(small_reading):
    reading, view = small_reading
    picture = reading_picture(view, reading)
    film_px = WORK_PX  # the 224-px square film enlarged
    assert picture.shape[1] >= 1024 and picture.shape[0] > film_px
    footer = picture[film_px:]
    bands = text_rows(footer)
    bar_rows = [ramp_run(footer[(a + b) // 2], "jet") for a, b in bands]
    ramp = max(bar_rows, key=len)
    assert len(ramp) >= 0.3 * picture.shape[1]  # the colour bar: the colormap from bottom to top, left to right
    assert ramp[:3].max() <= 8 and ramp[-3:].min() >= 247 and (np.diff(ramp.astype(int)) >= -2).all()
    heights = sorted(b - a for (a, b), run in zip(bands, bar_rows) if run is not ramp)
    assert len(heights) >= 5 and heights[len(heights) // 2] >= 14  # footer lines at least 14 px high at 1024 wide

    unlabelled = reading_picture(view, replace(reading, marks=(replace(reading.marks[0], text=""),)))
    rows, columns = np.nonzero((picture[:film_px] != unlabelled[:film_px]).any(axis=2))
    assert len(rows) > 500  # the label was drawn...
    assert rows.min() > 0 and columns.min() > 0 and columns.max() < picture.shape[1] - 1  # ...inside the film
    assert rows.max() - rows.min() >= 14  # and legible: about 18 px high


def test_no_colour_bar_when_no_heatmap_is_shown(small_reading):
    reading, view = small_reading
    picture = reading_picture(view, replace(reading, colormap=None))
    footer = picture[WORK_PX:]
    assert max(len(ramp_run(footer[(a + b) // 2], "jet")) for a, b in text_rows(footer)) < 0.1 * picture.shape[1]


def test_percentages_never_round_to_certainty(small_reading):
    assert [percent(p) for p in (0.9958, 0.004, 0.5, 0.9996, 1.0, 0.0004, 0.0)] == \
        ["99.6%", "0.4%", "50.0%", ">99.9%", ">99.9%", "<0.1%", "<0.1%"]
    reading, _ = small_reading
    sure = replace(reading.analysis, probability=0.9996)
    assert "P(pneumonia) >99.9%" in result_lines(replace(reading, analysis=sure))[2]
    assert "P(pneumonia)=>99.9%" in result_text(sure) and "1.000" not in result_text(sure)


@pytest.mark.parametrize("size", [(420, 500), (200, 200)])
def test_corner_texts_never_overlap(qtbot, kermany, size):
    view = Viewport()
    qtbot.addWidget(view)
    view.resize(*size)
    view.set_record(read_image(sorted((kermany / "NORMAL").iterdir())[0]))
    view.set_heat(None, "pneumonia-densenet121-recipe-v2-ema: PNEUMONIA 99.6%\ngradcam\nOUT OF SCOPE (analysed "
                        "anyway)")
    view.show()
    qtbot.waitExposed(view)
    rects = {corner: rect for corner, (rect, _) in view.corner_rects().items()}
    assert {"bottom_left", "bottom_right"} <= rects.keys()
    assert rects["bottom_left"].bottom() < rects["bottom_right"].top()  # side by side they would have overlapped
    boxes = list(rects.values())
    assert not any(a.intersects(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(view.rect().toRectF().contains(r) for r in boxes)
    # the painter draws there: every text-coloured pixel of the widget lies in one of the blocks
    image = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    rgb = pixels[:, :image.width() * 3].reshape(image.height(), image.width(), 3).astype(int)
    ys, xs = np.nonzero((rgb[..., 0] > 150) & (rgb[..., 1] > 150) & (rgb[..., 0] - rgb[..., 2] > 40))
    ratio = image.width() / view.width()
    assert len(ys) > 50 and all(any(r.adjusted(-1, -1, 2, 2).contains(x / ratio, y / ratio) for r in boxes)
                                for y, x in zip(ys, xs))


@pytest.fixture
def window(qtbot, tmp_path, kermany) -> MainWindow:
    window = MainWindow("cpu", models=[str(build(tmp_path / "tiny.onnx", bias=-1.0))])
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([sorted((kermany / "NORMAL").iterdir())[0]])
    return window


def live_dialogs(window: MainWindow) -> list[QDialog]:
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return window.findChildren(QDialog)


def test_tags_and_model_card_dialogs_do_not_pile_up(window):
    for show, kind in ((window.show_tags, TagsDialog), (window.show_model_card, ModelCardDialog)):
        for _ in range(20):
            show()
            window.findChild(kind).close()
        assert len(live_dialogs(window)) <= 1
        for _ in range(20):  # opened again and again without closing: the new one replaces the old
            show()
        assert len(live_dialogs(window)) == 1 and window.findChild(kind).isVisible()
        window.findChild(kind).close()


def test_export_shows_the_colour_bar_only_with_the_heatmap(window):
    pane = window.active
    assert window.reading().colormap == pane.style.colormap
    window._style_changed(replace(pane.style, visible=False))
    assert window.reading().colormap is None
