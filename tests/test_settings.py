"""Saved settings read defensively: a hand-edited or foreign settings file never stops the viewer or its analysis;
the command line wins over what was saved; Recent lists only what really opened."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from PySide6.QtCore import QSettings
from tiny_models import build, quadrant_film

from xrayviewer.gui.main_window import MainWindow
from xrayviewer.gui.settings import Settings

GARBAGE = """[General]
opacity=abc
geometry=garbage
state=@ByteArray(not a state)
colormap=no-such-map
method=no-such-method
model=/nowhere/model.onnx
provider=cuda
compare=maybe
recent=/no/such/film.dcm, /no/such/folder
last_folder=/no/such/folder
"""


@pytest.fixture
def settings_file():
    """The viewer's real settings file, emptied before and after the test."""
    store = QSettings("XRayViewer", "XRayViewer")
    store.clear()
    store.sync()
    yield Path(store.fileName())
    store.clear()
    store.sync()


def window_for(qtbot, tmp_path, provider=None):
    tiny = build(tmp_path / "tiny.onnx", bias=-1.0)
    window = MainWindow(provider, models=[str(tiny)])
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_a_garbage_settings_file_falls_back_to_defaults_and_still_analyses(qtbot, tmp_path, settings_file):
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(GARBAGE)
    saved = Settings()
    assert saved.store.value("opacity") == "abc"  # the file is what the viewer reads
    assert (saved.style().opacity, saved.style().colormap, saved.method()) == (0.4, "jet", "occlusion")
    assert saved.provider() == "auto" and saved.compare() is False and saved.recent() == []
    assert saved.geometry() is None and saved.model(["a.onnx"]) is None

    window = window_for(qtbot, tmp_path)
    film = tmp_path / "film.png"
    cv2.imwrite(str(film), quadrant_film(128))
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([film])
    analysis = window.panes[0].analysis
    assert analysis.method == "occlusion" and window.panes[0].style.colormap == "jet"
    assert analysis.refused or analysis.probability is not None


def test_the_command_line_provider_wins_over_the_saved_one(qtbot, tmp_path, settings_file):
    Settings().set_provider("cpu")
    assert window_for(qtbot, tmp_path, "auto").engine.provider == "auto"
    assert window_for(qtbot, tmp_path).engine.provider == "cpu"  # no flag: the saved choice
    assert Settings().provider() == "cpu"  # a flag is for this run: it is not saved
    Settings().set_provider("dml")  # saved on another machine: not available here
    assert window_for(qtbot, tmp_path).engine.provider == "auto"


def test_recent_holds_only_what_opened(qtbot, tmp_path, settings_file):
    window = window_for(qtbot, tmp_path)
    window.open_paths([tmp_path / "no-such-film.dcm"])
    window.open_paths([tmp_path / "typo"])
    (tmp_path / "notes.txt").write_text("not an image")
    window.open_paths([tmp_path / "notes.txt"])
    qtbot.wait(1500)  # the scans run in the background; none opens a film
    assert Settings().recent() == [] and [a.text() for a in window.recent_menu.actions()] == []

    film = tmp_path / "films" / "film.png"
    film.parent.mkdir()
    cv2.imwrite(str(film), quadrant_film(128))
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([film.parent])
    assert Settings().recent() == [str(film.parent)]
    assert [a.text() for a in window.recent_menu.actions()] == [str(film.parent)]
    assert Settings().last_folder() == str(film.parent)
