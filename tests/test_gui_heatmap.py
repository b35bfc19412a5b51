"""The viewer's default heatmap: occlusion, a first picture (every other patch) then the final map, with its measured
faithfulness in words; a refinement for a film that is no longer shown is dropped and raises nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_gui_review import settle

from xrayviewer.core.analysis.cam import DEFAULT_METHOD
from xrayviewer.gui.main_window import MainWindow


@pytest.fixture
def window(qtbot):
    w = MainWindow("cpu", models=["mobilenetv2"])
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


def captions(pane) -> list[str]:
    """Record every caption the pane's viewport is given from here on."""
    seen: list[str] = []
    original = pane.view.set_heat
    pane.view.set_heat = lambda heat, caption="", bar_top="", against=None: (
        seen.append(caption), original(heat, caption, bar_top, against))
    return seen


def test_the_default_map_comes_coarse_then_refined_with_its_figures(qtbot, window, kermany):
    pane = window.panes[0]
    assert pane.settings.method == DEFAULT_METHOD == "occlusion"
    seen = captions(pane)
    film = sorted((kermany / "PNEUMONIA").iterdir())[2]
    with qtbot.waitSignal(window.analysisShown, timeout=120_000):
        window.open_paths([film])
    final = window.engine.refined_cells(window.engine.model("mobilenetv2"), "occlusion")
    assert any(f"occlusion {final}x{final}, first picture, refining" in c for c in seen)
    assert f"occlusion {final}x{final}" in seen[-1] and "refining" not in seen[-1]
    cam = pane.analysis.cam
    assert cam.cells == final and cam.reference is not None  # a fixed colour scale, not a per-film stretch
    heat_text = window.panel.result.heat.text()
    assert "validation pneumonia films" in heat_text and "shows where the model's evidence is" in heat_text
    assert "Dashed cyan lines" in heat_text
    settle(qtbot, window)


def test_a_refinement_for_a_film_no_longer_shown_is_dropped(qtbot, window, kermany):
    pane = window.panes[0]
    first, second = sorted((kermany / "PNEUMONIA").iterdir())[3:5]
    errors: list[str] = []
    window.messages.errorShown.connect(errors.append)
    seen = captions(pane)
    window.open_paths([first])
    qtbot.waitUntil(lambda: any("refining" in c for c in seen), timeout=120_000)
    with qtbot.waitSignal(window.analysisShown, timeout=120_000):
        window.open_paths([second])
    settle(qtbot, window)
    assert Path(window.record.path).name == second.name and not errors
    final = window.engine.refined_cells(window.engine.model("mobilenetv2"), "occlusion")
    assert pane.analysis.cam.cells == final and "refining" not in seen[-1]
    assert sum("refining" not in c and f"{final}x{final}" in c for c in seen) == 1  # the first film's never came
