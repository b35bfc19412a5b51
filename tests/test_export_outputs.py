"""The viewer's exports: an unwritable place is said in the banner, never silent; a study export goes on past a bad
film and writes each PNG atomically."""

from __future__ import annotations

import cv2
import pytest
from PySide6.QtWidgets import QFileDialog
from test_batch_outputs import read_only_folder
from tiny_models import build, engine_for_made_films, quadrant_film

from xrayviewer.core.analysis.overlay import OverlayStyle
from xrayviewer.core.errors import OutputError
from xrayviewer.core.review.export import export_study
from xrayviewer.gui.main_window import MainWindow


def test_export_view_to_a_read_only_folder_shows_an_error_banner(qtbot, tmp_path, monkeypatch):
    window = MainWindow("cpu", models=[str(build(tmp_path / "tiny.onnx", bias=-1.0))])
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    film = tmp_path / "film.png"
    cv2.imwrite(str(film), quadrant_film(128))
    with qtbot.waitSignal(window.analysisShown, timeout=60_000):
        window.open_paths([film])
    target = read_only_folder(tmp_path) / "overlay.png"
    # the dialog is the user's part: it answers with the chosen path
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "PNG (*.png)")))
    window.export_view()  # written by a background worker: its error reaches the banner
    qtbot.waitUntil(window.banner.isVisible, timeout=30_000)
    assert str(target) in window.banner.text() and "cannot write PNG" in window.banner.text()
    assert not target.exists()

    good = tmp_path / "exported.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(good), "PNG (*.png)")))
    window.export_view()
    qtbot.waitUntil(good.exists, timeout=30_000)
    assert cv2.imread(str(good)) is not None


def test_study_export_goes_on_past_a_bad_film(tmp_path):
    films = []
    for i in range(2):
        films.append(tmp_path / f"film{i}.png")
        cv2.imwrite(str(films[-1]), quadrant_film(64, (i, 0)))
    broken = tmp_path / "broken.png"
    broken.write_bytes(films[0].read_bytes()[:60])
    engine = engine_for_made_films()
    model = str(build(tmp_path / "tiny.onnx"))
    out = tmp_path / "export"
    summary = export_study([films[0], broken, films[1]], out, engine, model, "gradcam", "pneumonia", OverlayStyle())
    assert summary.written == 2 and len(summary.failed) == 1 and "broken.png" in summary.failed[0]
    assert sorted(p.name for p in out.iterdir()) == ["0000_film0.gradcam.png", "0002_film1.gradcam.png"]
    with pytest.raises(OutputError, match="cannot export there"):
        export_study(films, tmp_path / "film0.png" / "sub", engine, model, "gradcam", "pneumonia", OverlayStyle())


def test_self_test_leaves_no_temporary_folder(tmp_path):
    import json
    import os
    import subprocess
    import sys

    temp = tmp_path / "temp"
    temp.mkdir()
    result = subprocess.run([sys.executable, "-m", "xrayviewer", "--self-test"], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TMPDIR": str(temp)})
    report = json.loads(result.stdout.splitlines()[-1])
    assert result.returncode == 0 and report["ok"], result.stdout + result.stderr
    assert all(m["overlay_bytes"] > 1000 for m in report["models"].values())
    assert list(temp.iterdir()) == []
